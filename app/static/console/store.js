// Lists many pages need (the tenant's channels), fetched once per sign-in and refreshed after
// a change, so a table can name channels instead of numbering them.

import { listAll } from "./api.js";
import { session } from "./session.js";

let cached = null;
let cachedFor = null;

/** The tenant's channels as a Map of channel_id to channel. */
export function channelMap({ refresh = false } = {}) {
  if (refresh || !cached || cachedFor !== session.token) {
    cachedFor = session.token;
    cached = listAll("/channels").then((channels) => new Map(channels.map((channel) => [channel.channel_id, channel])));
    cached.catch(() => {
      cached = null;
    });
  }
  return cached;
}

/** Forget the channels, after one was created, changed or deleted. */
export function forgetChannels() {
  cached = null;
}

/** A channel's name for a table cell: "name (type)", or "#id" for one that is gone. */
export function channelName(channels, channelId) {
  const channel = channels?.get(channelId);
  return channel ? channel.name : `#${channelId}`;
}

let description = null;

/**
 * Whether the API's own description (GET /api/v2/openapi.json) mentions `word`: how the console
 * tells that this server's rules take escalation steps before any rule carries them.
 */
export function apiMentions(word) {
  if (!description) {
    description = fetch("/api/v2/openapi.json").then((response) => (response.ok ? response.text() : ""), () => "");
  }
  return description.then((text) => text.includes(`"${word}"`));
}
