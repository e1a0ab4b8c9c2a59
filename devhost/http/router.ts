/**
 * The HTTP route table: every httpTrigger's route template under the host.json route prefix,
 * ordered by ASP.NET route precedence. A path that matches a route whose methods exclude the
 * request's method answers 405 (with Allow); a path that matches nothing answers 404.
 */
import { compareRoutePrecedence, matchRouteTemplate, type RouteTemplate } from './routeTemplate';

export interface HttpRoute<T> {
  template: RouteTemplate;
  /** Upper-case methods; undefined = every method (httpTrigger without `methods`). */
  methods: ReadonlySet<string> | undefined;
  target: T;
}

export type RouteMatch<T> =
  | { kind: 'matched'; route: HttpRoute<T>; params: Record<string, string> }
  | { kind: 'methodNotAllowed'; allowed: string[] }
  | { kind: 'notFound' }
  | { kind: 'badPath' };

/** Splits a URL pathname into decoded segments; undefined when its percent-encoding is malformed. */
export function decodePathSegments(pathname: string): string[] | undefined {
  const trimmed = pathname.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return [];
  try {
    return trimmed.split('/').map((segment) => decodeURIComponent(segment));
  } catch {
    return undefined;
  }
}

export class HttpRouter<T> {
  private readonly routes: HttpRoute<T>[];
  private readonly prefixSegments: string[];

  constructor(routes: HttpRoute<T>[], routePrefix: string) {
    this.routes = [...routes].sort((a, b) => compareRoutePrecedence(a.template, b.template));
    this.prefixSegments = routePrefix === '' ? [] : routePrefix.split('/').map((segment) => segment.toLowerCase());
  }

  /** The public path of a route template, e.g. "/api/items/{id:int}". */
  publicPath(template: RouteTemplate): string {
    const parts = [...this.prefixSegments, ...template.template.replace(/^~?\/+|\/+$/g, '').split('/')].filter((part) => part !== '');
    return `/${parts.join('/')}`;
  }

  match(method: string, pathname: string): RouteMatch<T> {
    const segments = decodePathSegments(pathname);
    if (segments === undefined) return { kind: 'badPath' };
    for (let i = 0; i < this.prefixSegments.length; i++) {
      if (segments[i]?.toLowerCase() !== this.prefixSegments[i]) return { kind: 'notFound' };
    }
    const below = segments.slice(this.prefixSegments.length);
    const upperMethod = method.toUpperCase();
    const allowed = new Set<string>();
    for (const route of this.routes) {
      const params = matchRouteTemplate(route.template, below);
      if (params === undefined) continue;
      if (route.methods === undefined || route.methods.has(upperMethod)) return { kind: 'matched', route, params };
      for (const allowedMethod of route.methods) allowed.add(allowedMethod);
    }
    return allowed.size > 0 ? { kind: 'methodNotAllowed', allowed: [...allowed].sort() } : { kind: 'notFound' };
  }
}
