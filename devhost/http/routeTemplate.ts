/**
 * Route templates as the Functions host (ASP.NET Core routing) reads them: literal segments
 * (case-insensitive), `{name}`, optional `{name?}`, defaults `{name=value}`, constraints
 * `{id:int}` / `{x:regex(...)}` (`{{` and `}}` escape braces), catch-all `{*rest}` / `{**rest}`, and
 * complex segments such as `{file}.{ext?}`. Path segments are matched after percent-decoding.
 */
import { createRouteConstraint, type RouteConstraint } from './routeConstraints';

export interface RouteLiteral {
  kind: 'literal';
  text: string;
}

export interface RouteParameter {
  kind: 'parameter';
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue: string | undefined;
  constraints: RouteConstraint[];
}

export type RoutePart = RouteLiteral | RouteParameter;

export interface RouteSegment {
  parts: RoutePart[];
  /** Complex segments only: tried in order; the first that matches (and passes constraints) wins. */
  patterns: { regex: RegExp; parameters: RouteParameter[] }[];
}

export interface RouteTemplate {
  template: string;
  segments: RouteSegment[];
}

export class RouteTemplateError extends Error {}

function parseParameter(body: string, template: string): RouteParameter {
  let rest = body.trim();
  let catchAll = false;
  if (rest.startsWith('**')) {
    catchAll = true;
    rest = rest.slice(2);
  } else if (rest.startsWith('*')) {
    catchAll = true;
    rest = rest.slice(1);
  }
  const nameMatch = /^[^:?=*{}/]+/.exec(rest);
  if (!nameMatch) throw new RouteTemplateError(`route "${template}": parameter "{${body}}" has no name`);
  const name = nameMatch[0].trim();
  rest = rest.slice(nameMatch[0].length);
  const constraints: RouteConstraint[] = [];
  while (rest.startsWith(':')) {
    const constraintName = /^:([A-Za-z][A-Za-z0-9]*)/.exec(rest);
    if (!constraintName?.[1]) throw new RouteTemplateError(`route "${template}": bad constraint in "{${body}}"`);
    rest = rest.slice(constraintName[0].length);
    let argumentText: string | undefined;
    if (rest.startsWith('(')) {
      let depth = 0;
      let end = -1;
      for (let i = 0; i < rest.length; i++) {
        const ch = rest[i];
        if (ch === '\\') {
          i++;
          continue;
        }
        if (ch === '(') depth++;
        if (ch === ')') {
          depth--;
          if (depth === 0) {
            end = i;
            break;
          }
        }
      }
      if (end === -1) throw new RouteTemplateError(`route "${template}": unclosed "(" in "{${body}}"`);
      argumentText = rest.slice(1, end);
      rest = rest.slice(end + 1);
    }
    try {
      constraints.push(createRouteConstraint(constraintName[1], argumentText));
    } catch (err) {
      throw new RouteTemplateError(`route "${template}": ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let optional = false;
  let defaultValue: string | undefined;
  if (rest.startsWith('?')) {
    optional = true;
    rest = rest.slice(1);
  }
  if (rest.startsWith('=')) {
    if (optional) throw new RouteTemplateError(`route "${template}": "{${body}}" cannot be optional and have a default`);
    defaultValue = rest.slice(1);
    rest = '';
  }
  if (rest.trim() !== '') throw new RouteTemplateError(`route "${template}": cannot parse "{${body}}"`);
  if (catchAll && optional) throw new RouteTemplateError(`route "${template}": a catch-all parameter is already optional`);
  return { kind: 'parameter', name, optional, catchAll, defaultValue, constraints };
}

function parseSegment(text: string, template: string): RoutePart[] {
  const parts: RoutePart[] = [];
  let literal = '';
  const flushLiteral = (): void => {
    if (literal !== '') parts.push({ kind: 'literal', text: literal });
    literal = '';
  };
  for (let i = 0; i < text.length; ) {
    const ch = text[i];
    if (ch === '{' && text[i + 1] === '{') {
      literal += '{';
      i += 2;
    } else if (ch === '}' && text[i + 1] === '}') {
      literal += '}';
      i += 2;
    } else if (ch === '}') {
      throw new RouteTemplateError(`route "${template}": unmatched "}"`);
    } else if (ch === '{') {
      flushLiteral();
      let body = '';
      let j = i + 1;
      for (; j < text.length; j++) {
        const inner = text[j];
        if ((inner === '}' || inner === '{') && text[j + 1] === inner) {
          body += inner;
          j++;
        } else if (inner === '}') {
          break;
        } else if (inner === '{') {
          throw new RouteTemplateError(`route "${template}": "{" inside a parameter must be written "{{"`);
        } else {
          body += inner;
        }
      }
      if (j >= text.length) throw new RouteTemplateError(`route "${template}": unclosed "{"`);
      parts.push(parseParameter(body, template));
      i = j + 1;
    } else {
      literal += ch;
      i++;
    }
  }
  flushLiteral();
  return parts;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Greedy groups reproduce ASP.NET's right-to-left matching of complex segments. */
function complexPatterns(parts: RoutePart[]): RouteSegment['patterns'] {
  const toRegex = (selected: RoutePart[]) => {
    const parameters: RouteParameter[] = [];
    let source = '';
    for (const part of selected) {
      if (part.kind === 'literal') source += escapeRegExp(part.text);
      else {
        source += '(.+)';
        parameters.push(part);
      }
    }
    return { regex: new RegExp(`^${source}$`, 'is'), parameters };
  };
  const last = parts[parts.length - 1];
  const beforeLast = parts[parts.length - 2];
  if (last?.kind === 'parameter' && (last.optional || last.defaultValue !== undefined) && beforeLast?.kind === 'literal') {
    // "{name}.{ext?}": try with the optional part first, then without it (and its separator).
    return [toRegex(parts), toRegex(parts.slice(0, -2))];
  }
  return [toRegex(parts)];
}

export function parseRouteTemplate(template: string): RouteTemplate {
  const trimmed = template.replace(/^~?\/+/, '').replace(/\/+$/, '');
  const texts = trimmed === '' ? [] : trimmed.split('/');
  const segments: RouteSegment[] = [];
  const names = new Set<string>();
  texts.forEach((text, index) => {
    if (text === '') throw new RouteTemplateError(`route "${template}": empty segment ("//")`);
    const parts = parseSegment(text, template);
    for (let i = 1; i < parts.length; i++) {
      if (parts[i]?.kind === 'parameter' && parts[i - 1]?.kind === 'parameter') {
        throw new RouteTemplateError(`route "${template}": parameters in one segment must be separated by literal text`);
      }
    }
    for (const part of parts) {
      if (part.kind !== 'parameter') continue;
      const lower = part.name.toLowerCase();
      if (names.has(lower)) throw new RouteTemplateError(`route "${template}": parameter "${part.name}" appears twice`);
      names.add(lower);
      if (part.catchAll && (index !== texts.length - 1 || parts.length > 1)) {
        throw new RouteTemplateError(`route "${template}": a catch-all parameter must be the whole last segment`);
      }
      if (part.optional && part !== parts[parts.length - 1]) {
        throw new RouteTemplateError(`route "${template}": an optional parameter must end its segment`);
      }
    }
    segments.push({ parts, patterns: parts.length > 1 ? complexPatterns(parts) : [] });
  });
  // Segments after the first optional one must all be optional too, or the route could never match without them.
  let sawOptional = false;
  for (const segment of segments) {
    const optional = isOptionalSegment(segment);
    if (sawOptional && !optional) {
      throw new RouteTemplateError(`route "${template}": a required segment cannot follow an optional one`);
    }
    sawOptional ||= optional;
  }
  return { template, segments };
}

function isOptionalSegment(segment: RouteSegment): boolean {
  const only = segment.parts.length === 1 ? segment.parts[0] : undefined;
  return only?.kind === 'parameter' && (only.optional || only.catchAll || only.defaultValue !== undefined);
}

function passes(parameter: RouteParameter, value: string): boolean {
  return parameter.constraints.every((constraint) => constraint.test(value));
}

function matchSegment(segment: RouteSegment, value: string, params: Record<string, string>): boolean {
  const [only] = segment.parts;
  if (segment.parts.length === 1 && only !== undefined) {
    if (only.kind === 'literal') return only.text.toLowerCase() === value.toLowerCase();
    if (!passes(only, value)) return false;
    params[only.name] = value;
    return true;
  }
  for (const pattern of segment.patterns) {
    const match = pattern.regex.exec(value);
    if (!match) continue;
    const values = pattern.parameters.map((_parameter, i) => match[i + 1] ?? '');
    if (pattern.parameters.every((parameter, i) => passes(parameter, values[i] ?? ''))) {
      pattern.parameters.forEach((parameter, i) => {
        params[parameter.name] = values[i] ?? '';
      });
      for (const part of segment.parts) {
        if (part.kind === 'parameter' && !(part.name in params) && part.defaultValue !== undefined) {
          params[part.name] = part.defaultValue;
        }
      }
      return true;
    }
  }
  return false;
}

/** Matches decoded path segments (below the route prefix); returns the route parameters or undefined. */
export function matchRouteTemplate(route: RouteTemplate, pathSegments: string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const segment = route.segments[i];
    if (segment === undefined) break;
    const only = segment.parts.length === 1 ? segment.parts[0] : undefined;
    if (only?.kind === 'parameter' && only.catchAll) {
      const rest = pathSegments.slice(i).join('/');
      if (rest !== '') {
        if (!passes(only, rest)) return undefined;
        params[only.name] = rest;
      } else if (only.defaultValue !== undefined) {
        params[only.name] = only.defaultValue;
      }
      return params;
    }
    const value = pathSegments[i];
    if (value === undefined) {
      // Path exhausted: the remaining segments are optional (checked at parse time) — fill defaults.
      for (const remaining of route.segments.slice(i)) {
        if (!isOptionalSegment(remaining)) return undefined;
        const parameter = remaining.parts[0];
        if (parameter?.kind === 'parameter' && parameter.defaultValue !== undefined) params[parameter.name] = parameter.defaultValue;
      }
      return params;
    }
    if (!matchSegment(segment, value, params)) return undefined;
  }
  return pathSegments.length > route.segments.length ? undefined : params;
}
