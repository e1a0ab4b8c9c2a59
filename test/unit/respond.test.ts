import { InvocationContext } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import {
  BadRequestError,
  ChatNotFoundError,
  ConfigError,
  ModelFailedError,
  ModelNotConfiguredError,
  ModelThrottledError,
  ModelTimeoutError,
  PayloadTooLargeError,
} from '../../src/errors';
import { errorResponse } from '../../src/http/respond';

function capture() {
  const lines: string[] = [];
  const context = new InvocationContext({ logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')) });
  return { context, lines };
}

describe('errorResponse', () => {
  it.each([
    [new BadRequestError('invalid_json', 'bad'), 400, 'invalid_json'],
    [new PayloadTooLargeError('big'), 413, 'payload_too_large'],
    [new ChatNotFoundError('abc'), 404, 'chat_not_found'],
    [new ModelNotConfiguredError(), 503, 'model_not_configured'],
    [new ConfigError('MODEL_TIMEOUT_MS: bad'), 503, 'invalid_configuration'],
    [new ModelThrottledError('slow down', 2.2), 429, 'model_throttled'],
    [new ModelFailedError('down'), 502, 'model_failed'],
    [new ModelTimeoutError('late'), 504, 'model_timeout'],
  ])('maps %o to %i with a stable code', (err, status, code) => {
    const response = errorResponse(err, capture().context);
    expect(response.status).toBe(status);
    expect(response.jsonBody).toMatchObject({ error: { code, message: err.message } });
    expect((response.headers as Record<string, string>)['Content-Type']).toContain('application/json');
  });

  it('adds Retry-After (whole seconds, at least 1) for throttling', () => {
    expect((errorResponse(new ModelThrottledError('x', 2.2), capture().context).headers as Record<string, string>)['Retry-After']).toBe('3');
    expect((errorResponse(new ModelThrottledError('x', 0), capture().context).headers as Record<string, string>)['Retry-After']).toBe('1');
  });

  it("keeps the seed's {id, exists:false} fields on 404", () => {
    expect(errorResponse(new ChatNotFoundError('abc'), capture().context).jsonBody).toMatchObject({ id: 'abc', exists: false });
  });

  it('answers an unexpected error with a generic 500 that reveals nothing, and logs it', () => {
    const { context, lines } = capture();
    const err = new TypeError('secret detail at /home/app/x.js');
    const response = errorResponse(err, context);
    expect(response.status).toBe(500);
    expect(JSON.stringify(response.jsonBody)).not.toContain('secret detail');
    expect(JSON.stringify(response.jsonBody)).not.toContain('x.js');
    expect(lines.join('\n')).toContain('TypeError');
  });
});
