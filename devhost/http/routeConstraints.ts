/**
 * ASP.NET Core route constraints as the Functions host applies them to `{param:constraint}`:
 * int, long, bool, datetime, decimal, double, float, guid, alpha, min, max, range, length,
 * minlength, maxlength, regex and required. Values are checked culture-invariantly; regex()
 * is case-insensitive and not anchored, like .NET's RegexRouteConstraint.
 */
export interface RouteConstraint {
  /** As written, e.g. "range(1,10)", for messages. */
  readonly text: string;
  test(value: string): boolean;
}

const INT32_MIN = -(2n ** 31n);
const INT32_MAX = 2n ** 31n - 1n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const integerPattern = /^\s*[+-]?\d+\s*$/;
const decimalPattern = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/;
const floatPattern = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(Infinity|NaN)\s*$/;
const guidPatterns = [
  /^[0-9a-f]{32}$/i,
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
  /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/i,
  /^\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$/i,
];

function parseInteger(value: string): bigint | undefined {
  return integerPattern.test(value) ? BigInt(value.trim()) : undefined;
}

function inRange(value: string, min: bigint, max: bigint): boolean {
  const parsed = parseInteger(value);
  return parsed !== undefined && parsed >= min && parsed <= max;
}

function integerArgument(constraint: string, raw: string | undefined): bigint {
  const parsed = raw === undefined ? undefined : parseInteger(raw);
  if (parsed === undefined) throw new Error(`route constraint "${constraint}" needs integer arguments`);
  return parsed;
}

function expectArgumentCount(name: string, args: string[], counts: number[]): void {
  if (!counts.includes(args.length)) {
    throw new Error(`route constraint "${name}" takes ${counts.join(' or ')} argument(s), got ${args.length}`);
  }
}

/** Builds a constraint from its name and raw argument text (the part inside the parentheses, if any). */
export function createRouteConstraint(name: string, argumentText: string | undefined): RouteConstraint {
  const text = argumentText === undefined ? name : `${name}(${argumentText})`;
  const lower = name.toLowerCase();
  if (lower === 'regex') {
    if (argumentText === undefined) throw new Error('route constraint "regex" needs a pattern: regex(...)');
    let pattern: RegExp;
    try {
      pattern = new RegExp(argumentText, 'iu');
    } catch {
      pattern = new RegExp(argumentText, 'i');
    }
    return { text, test: (value) => pattern.test(value) };
  }
  const args = argumentText === undefined ? [] : argumentText.split(',').map((arg) => arg.trim());
  const simple = (test: (value: string) => boolean): RouteConstraint => {
    expectArgumentCount(name, args, [0]);
    return { text, test };
  };
  switch (lower) {
    case 'int':
      return simple((value) => inRange(value, INT32_MIN, INT32_MAX));
    case 'long':
      return simple((value) => inRange(value, INT64_MIN, INT64_MAX));
    case 'bool':
      return simple((value) => /^\s*(true|false)\s*$/i.test(value));
    case 'datetime':
      return simple((value) => value.trim() !== '' && !Number.isNaN(Date.parse(value)));
    case 'decimal':
      return simple((value) => decimalPattern.test(value));
    case 'double':
    case 'float':
      return simple((value) => floatPattern.test(value));
    case 'guid':
      return simple((value) => guidPatterns.some((pattern) => pattern.test(value)));
    case 'alpha':
      return simple((value) => /^[a-z]*$/i.test(value));
    case 'required':
      return simple((value) => value !== '');
    case 'min': {
      expectArgumentCount(name, args, [1]);
      const min = integerArgument(text, args[0]);
      return { text, test: (value) => inRange(value, min, INT64_MAX) };
    }
    case 'max': {
      expectArgumentCount(name, args, [1]);
      const max = integerArgument(text, args[0]);
      return { text, test: (value) => inRange(value, INT64_MIN, max) };
    }
    case 'range': {
      expectArgumentCount(name, args, [2]);
      const min = integerArgument(text, args[0]);
      const max = integerArgument(text, args[1]);
      return { text, test: (value) => inRange(value, min, max) };
    }
    case 'length': {
      expectArgumentCount(name, args, [1, 2]);
      const min = Number(integerArgument(text, args[0]));
      const max = args.length === 2 ? Number(integerArgument(text, args[1])) : min;
      return { text, test: (value) => value.length >= min && value.length <= max };
    }
    case 'minlength': {
      expectArgumentCount(name, args, [1]);
      const min = Number(integerArgument(text, args[0]));
      return { text, test: (value) => value.length >= min };
    }
    case 'maxlength': {
      expectArgumentCount(name, args, [1]);
      const max = Number(integerArgument(text, args[0]));
      return { text, test: (value) => value.length <= max };
    }
    default:
      throw new Error(`unknown route constraint "${name}"`);
  }
}
