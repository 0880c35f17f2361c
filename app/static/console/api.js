// The console's one way to the REST API (/api/v2): JSON in, JSON or an ApiError out.

import { session } from "./session.js";

export const API_ROOT = "/api/v2";

/** A refused request: its HTTP status and the RFC 9457 problem the API answered. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || (status ? `The server answered ${status}.` : "Pulse cannot be reached."));
    this.status = status;
    this.problem = problem || {};
    this.errors = Array.isArray(problem?.errors) ? problem.errors : [];
  }

  /** 404 on a route this server does not have (yet): the feature is not available here. */
  get notFound() {
    return this.status === 404;
  }
}

/** `?a=1&b=2`, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json, application/problem+json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API_ROOT + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, { detail: "Pulse cannot be reached: check the connection and try again." });
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && session.token) {
    session.expire();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  patch: (path, body) => request("PATCH", path, body),
  delete: (path) => request("DELETE", path),
};

/** Every item of a list endpoint, following `next_cursor` (at most `pages` pages of 500). */
export async function listAll(path, params = {}, pages = 10) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < pages; page += 1) {
    const answer = await api.get(path + query({ ...params, limit: 500, cursor }));
    items.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return items;
}
