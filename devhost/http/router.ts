/**
 * The HTTP route table as the Functions host builds it: every httpTrigger's route template under the
 * host.json route prefix, in the order of the function names (ordinal, ignoring case), and the first
 * route whose template and methods match wins — not ASP.NET's most-specific-first precedence, so a
 * catch-all route shadows every route of a function whose name sorts after it. When no route
 * matches, the request is not found (a wrong method too: the host answers 404, not 405).
 */
import { matchRouteTemplate, type RouteTemplate } from './routeTemplate';

export interface HttpRoute<T> {
  /** The function's name, which orders the table. */
  name: string;
  template: RouteTemplate;
  /** Upper-case methods; undefined = every method (httpTrigger without `methods`). */
  methods: ReadonlySet<string> | undefined;
  target: T;
}

export type RouteMatch<T> =
  | { kind: 'matched'; route: HttpRoute<T>; params: Record<string, string> }
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
    const byName = (a: HttpRoute<T>, b: HttpRoute<T>) => {
      const [x, y] = [a.name.toUpperCase(), b.name.toUpperCase()];
      return x < y ? -1 : x > y ? 1 : 0;
    };
    this.routes = [...routes].sort(byName);
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
    for (const route of this.routes) {
      if (route.methods !== undefined && !route.methods.has(upperMethod)) continue;
      const params = matchRouteTemplate(route.template, below);
      if (params !== undefined) return { kind: 'matched', route, params };
    }
    return { kind: 'notFound' };
  }
}
