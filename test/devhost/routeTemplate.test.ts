// Unit tests of the route template parser/matcher and router (no processes): ASP.NET routing rules
// the local host reproduces, including the error cases that must stop start-up.
import { describe, expect, it } from 'vitest';
import { HttpRouter } from '../../devhost/http/router';
import { matchRouteTemplate, parseRouteTemplate, RouteTemplateError } from '../../devhost/http/routeTemplate';

const match = (template: string, path: string) => matchRouteTemplate(parseRouteTemplate(template), path === '' ? [] : path.split('/'));

describe('route templates', () => {
  it('matches literals case-insensitively and binds parameters', () => {
    expect(match('chats/{chatId}', 'Chats/abc')).toEqual({ chatId: 'abc' });
    expect(match('chats/{chatId}', 'chats')).toBeUndefined();
    expect(match('chats/{chatId}', 'chats/a/b')).toBeUndefined();
  });

  it('supports optional parameters, defaults and catch-all', () => {
    expect(match('a/{b?}', 'a')).toEqual({});
    expect(match('a/{b?}', 'a/1')).toEqual({ b: '1' });
    expect(match('a/{b=x}', 'a')).toEqual({ b: 'x' });
    expect(match('a/{*rest}', 'a/1/2/3')).toEqual({ rest: '1/2/3' });
    expect(match('a/{**rest}', 'a')).toEqual({});
    expect(match('{x?}/{y?}', '')).toEqual({});
  });

  it('applies constraints', () => {
    expect(match('n/{v:int}', 'n/-12')).toEqual({ v: '-12' });
    expect(match('n/{v:int}', 'n/2147483648')).toBeUndefined();
    expect(match('n/{v:long}', 'n/2147483648')).toEqual({ v: '2147483648' });
    expect(match('n/{v:bool}', 'n/TRUE')).toEqual({ v: 'TRUE' });
    expect(match('n/{v:alpha}', 'n/ab1')).toBeUndefined();
    expect(match('n/{v:min(3)}', 'n/2')).toBeUndefined();
    expect(match('n/{v:max(3)}', 'n/3')).toEqual({ v: '3' });
    expect(match('n/{v:length(2,3)}', 'n/abcd')).toBeUndefined();
    expect(match('n/{v:minlength(2):maxlength(3)}', 'n/abc')).toEqual({ v: 'abc' });
    expect(match('n/{v:double}', 'n/1.5e3')).toEqual({ v: '1.5e3' });
    expect(match('n/{v:datetime}', 'n/2024-01-02')).toEqual({ v: '2024-01-02' });
    expect(match('n/{v:regex(^\\d{{3}}-\\d{{2}}$)}', 'n/123-45')).toEqual({ v: '123-45' });
    expect(match('n/{v:regex(^\\d{{3}}-\\d{{2}}$)}', 'n/123-456')).toBeUndefined();
  });

  it('matches complex segments right to left', () => {
    expect(match('f/{name}.{ext}', 'f/a.b.c')).toEqual({ name: 'a.b', ext: 'c' });
    expect(match('f/{name}.{ext?}', 'f/a')).toEqual({ name: 'a' });
    expect(match('f/{a}-{b}-{c}', 'f/1-2-3-4')).toEqual({ a: '1-2', b: '3', c: '4' });
  });

  it('rejects templates ASP.NET rejects', () => {
    for (const bad of ['a/{b', 'a/b}', 'a/{b}{c}', 'a/{*rest}/b', 'a/{b?}/c', 'a/{b}/{B}', 'a/{b:nosuch}', 'a//b', 'a/{b:min(x)}']) {
      expect(() => parseRouteTemplate(bad), bad).toThrow(RouteTemplateError);
    }
  });
});

describe('router', () => {
  const route = (name: string, template: string, methods?: string[]) => ({
    name,
    template: parseRouteTemplate(template),
    methods: methods === undefined ? undefined : new Set(methods),
    target: name,
  });
  const router = new HttpRouter(
    [route('literal', 'items/new', ['PUT']), route('rest', 'items/{*rest}', ['POST']), route('Constrained', 'items/{id:int}', ['GET', 'PUT']), route('anyItem', 'items/{id}', ['GET']), route('any', 'any')],
    'api',
  );
  const target = (method: string, path: string) => {
    const result = router.match(method, path);
    return result.kind === 'matched' ? result.route.target : result.kind;
  };

  it('takes the first match in function-name order (ignoring case), as the Functions host does, not the most specific route', () => {
    // any < anyItem < Constrained < literal < rest: anyItem takes every GET, however specific the others.
    expect(target('GET', '/api/items/5')).toBe('anyItem');
    expect(target('GET', '/api/items/new')).toBe('anyItem');
    // A route whose methods or template do not fit is passed over.
    expect(target('PUT', '/api/items/5')).toBe('Constrained');
    expect(target('PUT', '/api/items/new')).toBe('literal');
    expect(target('POST', '/api/items/x/y')).toBe('rest');
    expect(target('PUT', '/api/any')).toBe('any');
    expect(target('GET', '/items/5')).toBe('notFound');
  });

  it('treats a path whose routes all exclude the method as not found (the Functions host answers 404, not 405)', () => {
    expect(router.match('DELETE', '/api/items/5')).toEqual({ kind: 'notFound' });
  });

  it('works without a route prefix', () => {
    const bare = new HttpRouter([route('hello', 'hello', ['GET'])], '');
    expect(bare.match('GET', '/hello').kind).toBe('matched');
    expect(bare.publicPath(parseRouteTemplate('hello'))).toBe('/hello');
  });
});
