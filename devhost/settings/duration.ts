/**
 * Parses host.json `functionTimeout` values: "hh:mm:ss", "d.hh:mm:ss" (a .NET TimeSpan), or "-1"
 * for no limit. Returns milliseconds, or undefined for "no limit".
 */
export function parseFunctionTimeout(value: string): number | undefined {
  const trimmed = value.trim();
  if (trimmed === '-1') return undefined;
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$/.exec(trimmed);
  if (!match) {
    throw new Error(`host.json functionTimeout "${value}" is not a duration like "00:05:00" or "-1".`);
  }
  const [, days = '0', hours = '0', minutes = '0', seconds = '0', fraction = ''] = match;
  const fractionMs = fraction === '' ? 0 : Math.round(Number(`0.${fraction}`) * 1000);
  const ms = ((Number(days) * 24 + Number(hours)) * 60 + Number(minutes)) * 60_000 + Number(seconds) * 1000 + fractionMs;
  if (ms <= 0) throw new Error(`host.json functionTimeout "${value}" must be positive (or "-1" for no limit).`);
  return ms;
}
