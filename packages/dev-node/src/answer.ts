/**
 * The event route's answers, as pure functions: which request reaches which project and
 * eventType, and the bodies the node answers with (w3bstream v1 `EventRsp` and its error body).
 * The route, the token rule and the answer bodies are the ones the dev receiver uses too
 * (@power-meter/w3bstream, v1-event-route.ts); this file adds the project they are checked
 * against. The HTTP server only moves bytes.
 */
import {
  V1_INVALID_TOKEN,
  matchV1EventRoute,
  newV1EventId,
  v1TokenAccepted,
  type V1Publisher,
  type V1RouteRequest,
  v1AnswerHead,
  v1EventParams,
  v1WrongChannelAnswer,
} from './v1-event-route.js';

export interface ProjectIdentity extends V1Publisher {
  name: string;
  publisherToken: string;
}

export type Routing =
  | { kind: 'answer'; status: number; body: unknown }
  | { kind: 'dispatch'; channel: string; eventType: string; eventId: string; timestampMs: number };

/**
 * Routes one request. The token may come as `Authorization: Bearer …` or `?authorization=`
 * (the query wins, and `Bearer ` is optional); the token is checked before the project name, so
 * a valid token with a wrong name gets 201 + InvalidEventChannel, as on the node.
 */
export function routeEvent(req: V1RouteRequest, project: ProjectIdentity, nowMs: number): Routing {
  const route = matchV1EventRoute(req.method, req.url);
  if (!route.ok) return { kind: 'answer', status: route.status, body: route.body };
  if (!v1TokenAccepted(route.url, req.authorization, project.publisherToken))
    return { kind: 'answer', status: 401, body: V1_INVALID_TOKEN };
  const params = v1EventParams(route.url, nowMs);
  const eventId = params.eventId ?? newV1EventId();
  if (route.channel !== project.name)
    return { kind: 'answer', status: 201, body: v1WrongChannelAnswer(v1AnswerHead(route.channel, project, eventId, params.timestampMs)) };
  return { kind: 'dispatch', channel: route.channel, eventType: params.eventType, eventId, timestampMs: params.timestampMs };
}
