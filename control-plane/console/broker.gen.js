// Generated from the OpenAPI document "Skyport broker node API" 0.1.0 by `skyport console-client`
// (see README, "Web console"): do not edit. A test regenerates and diffs it.
//
// createClient(send) returns one function per operation. Path parameters come first,
// then the JSON body (if the operation takes one), then the query parameters as an
// object; `send(method, path, { query, body, text })` makes the request (`text`:
// the answer is not JSON) and resolves to the decoded answer.

/**
 * An ACL rule as shown: exactly one of `clientid`, `username` or `all`.
 * @typedef {Object} AclRuleView
 * @property {string} access - `allow` or `deny`.
 * @property {string} action - `pub`, `sub` or `pubsub`.
 * @property {string|null} [all] - `$all` for rules that apply to every client.
 * @property {string|null} [clientid]
 * @property {string} topic
 * @property {string|null} [username]
 */

/**
 * An action of a rule, as sent.
 * @typedef {Object} ActionBody
 * @property {string} name - An action of `GET /actions`, e.g. `republish`, `data_to_webserver`.
 * @property {Object} [params] - Its params (templates use `${field}` of the rule's output).
 */

/**
 * One entry of `GET /actions`.
 * @typedef {Object} ActionInfo
 * @property {string} description
 * @property {string} for - What it runs on: `$any` (messages and events).
 * @property {string} name
 * @property {Object} params - Its params: name → `{type, required, default, description}`.
 * @property {string} title
 * @property {Array<string>} types - Resource types it needs (empty: none).
 */

/**
 * An action's counters on one node.
 * @typedef {Object} ActionMetricsView
 * @property {number} dropped - Outputs dropped because the buffer was full (the oldest go first).
 * @property {number} failed - Outputs the sink refused (not retried, e.g. an SQL error or a 4xx answer).
 * @property {string} node
 * @property {number} queued - Outputs waiting in the buffer now.
 * @property {number} retried - Outputs of failed attempts that were retried (the sink was down).
 * @property {number} success - Outputs the sink took.
 */

/**
 * An action of a rule.
 * @typedef {Object} ActionView
 * @property {Array<Object>} fallbacks - Always empty (no fallback actions).
 * @property {string} id
 * @property {Array<ActionMetricsView>} metrics
 * @property {string} name
 * @property {Object} params
 */

/**
 * Answer to `POST`: `data` (each name → `ok`) only for an array body.
 * @typedef {Object} Added
 * @property {number} code - Always 0.
 * @property {Object<string, string>|null} [data]
 */

/**
 * A rule just added.
 * @typedef {(AclRuleView & {result: string})} AddedRule
 */

/**
 * `data` of `POST /acl`: one rule for an object body, a list for an array.
 * @typedef {(AddedRule|Array<AddedRule>)} AddedRules
 */

/**
 * A ban in force.
 * @typedef {Object} BanView
 * @property {string} as - `clientid`, `username` or `peerhost`.
 * @property {number} at - Unix seconds.
 * @property {string} by
 * @property {string} reason
 * @property {number} until - Unix seconds.
 * @property {string} who
 */

/**
 * @typedef {Object} BatchDone
 * @property {number} code
 * @property {Array<SubscriptionBatchResult>} data - One result per entry, in the request's order.
 */

/**
 * @typedef {Object} BatchPublished
 * @property {number} code
 * @property {Array<BatchResult>} data - One result per message, in the request's order.
 */

/**
 * The result of one message of a batch.
 * @typedef {Object} BatchResult
 * @property {number} code - 0 published; otherwise the EMQX code of the error.
 * @property {string|null} [message] - Why it failed, when it did.
 * @property {string} topic - The message's topic (or topics) as given.
 */

/**
 * A user, by client id.
 * @typedef {Object} ClientIdView
 * @property {string} clientid
 */

/**
 * A client: connected, or disconnected with a persistent session.
 * @typedef {Object} ClientView
 * @property {boolean|null} [clean_start]
 * @property {string} clientid
 * @property {string} conn_state - `connected` or `disconnected`.
 * @property {boolean} connected
 * @property {string|null} [connected_at] - RFC 3339 (connected clients).
 * @property {number|null} [expiry_in] - Seconds until a disconnected session expires.
 * @property {string|null} [ip_address] - Peer address (connected clients).
 * @property {number|null} [keepalive]
 * @property {number|null} [port]
 * @property {string|null} [proto_name]
 * @property {number|null} [proto_ver] - 3 (MQTT 3.1), 4 (3.1.1) or 5.
 * @property {string|null} [transport] - `mqtt`, `mqtts`, `ws` or `wss`.
 * @property {string|null} [username]
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_AddedRules
 * @property {number} code - Always 0.
 * @property {(AddedRule|Array<AddedRule>)} data - `data` of `POST /acl`: one rule for an object body, a list for an array.
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_BanView
 * @property {number} code - Always 0.
 * @property {{as: string, at: number, by: string, reason: string, until: number, who: string}} data - A ban in force.
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_ClientIdView
 * @property {number} code - Always 0.
 * @property {{clientid: string}} data - A user, by client id.
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_ResourceView
 * @property {number} code - Always 0.
 * @property {{config: Object, created_at: number, description: string, id: string, status?: Array<ResourceStatus>|null, type: string}} data - A resource (secrets shown as `******`).
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_RuleView
 * @property {number} code - Always 0.
 * @property {{actions: Array<ActionView>, created_at: number, description: string, enabled: boolean, for: Array<string>, id: string, metrics: Array<RuleMetricsView>, rawsql: string}} data - A rule.
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_UsernameView
 * @property {number} code - Always 0.
 * @property {{username: string}} data - A user, by username.
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_ActionInfo
 * @property {number} code - Always 0.
 * @property {Array<{description: string, for: string, name: string, params: Object, title: string, types: Array<string>}>} data
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_ClientView
 * @property {number} code - Always 0.
 * @property {Array<{clean_start?: boolean|null, clientid: string, conn_state: string, connected: boolean, connected_at?: string|null, expiry_in?: number|null, ip_address?: string|null, keepalive?: number|null, port?: number|null, proto_name?: string|null, proto_ver?: number|null, transport?: string|null, username?: string|null}>} data
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_NodeMetrics
 * @property {number} code - Always 0.
 * @property {Array<{metrics: Object<string, number>, node: string}>} data
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_ResourceView
 * @property {number} code - Always 0.
 * @property {Array<{config: Object, created_at: number, description: string, id: string, status?: Array<ResourceStatus>|null, type: string}>} data
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_RuleView
 * @property {number} code - Always 0.
 * @property {Array<{actions: Array<ActionView>, created_at: number, description: string, enabled: boolean, for: Array<string>, id: string, metrics: Array<RuleMetricsView>, rawsql: string}>} data
 */

/**
 * `{"code": 0, "data": …}`.
 * @typedef {Object} Data_Vec_SubscriptionView
 * @property {number} code - Always 0.
 * @property {Array<{clientid: string, node: string, qos: number, topic: string}>} data
 */

/**
 * `{"code": 0}`.
 * @typedef {Object} Done
 * @property {number} code - Always 0.
 */

/**
 * An error answer.
 * @typedef {Object} ErrorBody
 * @property {number} code - EMQX 4 return code (never 0).
 * @property {string} message - What went wrong, for people.
 */

/**
 * Where a page is in its list.
 * @typedef {Object} Meta
 * @property {number} count - Items in the whole list.
 * @property {number} limit - Page size.
 * @property {number} page - Page number, from 1.
 */

/**
 * A ban to add.
 * @typedef {Object} NewBan
 * @property {string} as - `clientid`, `username` or `peerhost`.
 * @property {number|null} [at] - When the ban was made, Unix seconds (default: now).
 * @property {string|null} [by] - Who banned (free text; default: the app id of the request).
 * @property {string|null} [reason] - Why (free text, up to 1024 bytes).
 * @property {number|null} [until] - When it ends, Unix seconds (default: five minutes from now).
 * @property {string} who - The client id, username, or IP address banned.
 */

/**
 * A user identified by client id.
 * @typedef {Object} NewClientId
 * @property {string} clientid - 1 to 1024 bytes.
 * @property {string} password - 1 to 1024 bytes; stored as an argon2id hash, never shown again.
 */

/**
 * One user, or a batch.
 * @typedef {(NewClientId|Array<NewClientId>)} NewClientIds
 */

/**
 * Body of `PUT`: the new password.
 * @typedef {Object} NewPassword
 * @property {string} password - 1 to 1024 bytes.
 */

/**
 * A resource to create.
 * @typedef {Object} NewResourceBody
 * @property {Object} config
 * @property {string|null} [description]
 * @property {string|null} [id] - Its id (default: `resource:` and 8 hex digits).
 * @property {string} type - `web_hook` (`url`, `method`, `headers`, `request_timeout_ms`), `backend_redis_single` (`server` host:port, `database`, `password`) or `backend_pgsql` / `backend_mysql` (`server`, `database`, `user`, `password`, `pool_size`), `bridge_rabbit` (`server`, `username`, `password`, `virtual_host`, `heartbeat`) or `bridge_nats` (`server`, `user`, `password` or `token`).
 */

/**
 * An ACL rule to add.
 * @typedef {Object} NewRule
 * @property {string} access - `allow` or `deny`.
 * @property {string} action - `pub`, `sub`, `pubsub` (or `publish`, `subscribe`, `all`).
 * @property {string|null} [all] - `$all`, as EMQX shows rules for every client.
 * @property {string|null} [clientid] - The client id the rule applies to.
 * @property {string|null} [login] - EMQX 4.0's subject field; only `$all` is accepted.
 * @property {string} topic - Topic filter: MQTT wildcards, `%c`/`%u` placeholders, or `eq <filter>` for an exact match.
 * @property {string|null} [username] - The username the rule applies to.
 */

/**
 * A rule to create.
 * @typedef {Object} NewRuleBody
 * @property {Array<ActionBody>} actions
 * @property {string|null} [description]
 * @property {boolean|null} [enabled] - Default true.
 * @property {string|null} [id] - Its id (default: `rule:` and 8 hex digits).
 * @property {string} rawsql - `SELECT … FROM "<topic filter>"[, …] [WHERE …]`.
 */

/**
 * One rule, or a batch.
 * @typedef {(NewRule|Array<NewRule>)} NewRules
 */

/**
 * A user identified by username.
 * @typedef {Object} NewUsername
 * @property {string} password - 1 to 1024 bytes; stored as an argon2id hash, never shown again.
 * @property {string} username - 1 to 1024 bytes.
 */

/**
 * One user, or a batch.
 * @typedef {(NewUsername|Array<NewUsername>)} NewUsernames
 */

/**
 * The counters of one node, named as EMQX 4 names them.
 * @typedef {Object} NodeMetrics
 * @property {Object<string, number>} metrics - `messages.received` (PUBLISH from clients), `messages.sent` (PUBLISH to subscribers, retained deliveries included), `messages.retained.sent`, `messages.publish.http`, `messages.dropped`, `bytes.received`, `bytes.sent`, `sessions.connected`, `sessions.persistent`.
 * @property {string} node
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_AclRuleView
 * @property {number} code - Always 0.
 * @property {Array<{access: string, action: string, all?: string|null, clientid?: string|null, topic: string, username?: string|null}>} data
 * @property {Meta} meta
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_BanView
 * @property {number} code - Always 0.
 * @property {Array<{as: string, at: number, by: string, reason: string, until: number, who: string}>} data
 * @property {Meta} meta
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_ClientIdView
 * @property {number} code - Always 0.
 * @property {Array<{clientid: string}>} data
 * @property {Meta} meta
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_ClientView
 * @property {number} code - Always 0.
 * @property {Array<{clean_start?: boolean|null, clientid: string, conn_state: string, connected: boolean, connected_at?: string|null, expiry_in?: number|null, ip_address?: string|null, keepalive?: number|null, port?: number|null, proto_name?: string|null, proto_ver?: number|null, transport?: string|null, username?: string|null}>} data
 * @property {Meta} meta
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_SubscriptionView
 * @property {number} code - Always 0.
 * @property {Array<{clientid: string, node: string, qos: number, topic: string}>} data
 * @property {Meta} meta
 */

/**
 * A page of a list.
 * @typedef {Object} Paged_UsernameView
 * @property {number} code - Always 0.
 * @property {Array<{username: string}>} data
 * @property {Meta} meta
 */

/**
 * A refusal as `application/problem+json` (RFC 9457), the control plane's shape.
 * @typedef {Object} Problem
 * @property {string} code - Stable, machine-readable problem code.
 * @property {string} detail - What went wrong, for people.
 * @property {number} status - HTTP status code.
 * @property {string} title - Short summary of the HTTP status.
 * @property {string} type - Always `about:blank`; `code` identifies the problem.
 */

/**
 * A message to publish.
 * @typedef {Object} PublishRequest
 * @property {string|null} [clientid] - Shown as the publisher in EMQX; accepted and ignored here.
 * @property {string|null} [encoding] - `plain` (default) or `base64`.
 * @property {string} [payload]
 * @property {number} [qos] - 0, 1 or 2 (default 0).
 * @property {boolean} [retain]
 * @property {string|null} [topic] - The topic to publish to (or use `topics`).
 * @property {string|null} [topics] - Several topics, comma-separated; each gets the message.
 */

/**
 * `{"code": 0}` once the message is published.
 * @typedef {Object} Published
 * @property {number} code
 */

/**
 * Whether one node reaches the service.
 * @typedef {Object} ResourceStatus
 * @property {string|null} [error] - Why not, when it is not.
 * @property {boolean} is_alive
 * @property {string} node
 */

/**
 * A resource (secrets shown as `******`).
 * @typedef {Object} ResourceView
 * @property {Object} config
 * @property {number} created_at - Unix ms.
 * @property {string} description
 * @property {string} id
 * @property {Array<ResourceStatus>|null} [status] - Per node, whether the service answers (only on `GET /resources/{id}`).
 * @property {string} type
 */

/**
 * A rule's counters on one node.
 * @typedef {Object} RuleMetricsView
 * @property {number} failed - Inputs on which the statement failed (e.g. a function got the wrong type).
 * @property {number} matched - Inputs for which FROM and WHERE held (the actions got the output).
 * @property {number} no_result - Inputs FROM selected but WHERE refused.
 * @property {string} node
 * @property {number} speed - Matched per second, over the last second.
 * @property {number} speed_max - The highest `speed` seen.
 */

/**
 * Changes to a rule: what is left out stays.
 * @typedef {Object} RuleUpdateBody
 * @property {Array<ActionBody>|null} [actions] - Replaces the actions; an action given again with the same name and params keeps its buffer and counters.
 * @property {string|null} [description]
 * @property {boolean|null} [enabled]
 * @property {string|null} [rawsql]
 */

/**
 * A rule.
 * @typedef {Object} RuleView
 * @property {Array<ActionView>} actions
 * @property {number} created_at - Unix ms.
 * @property {string} description
 * @property {boolean} enabled
 * @property {Array<string>} for - The topic filters and `$events/…` topics it selects from.
 * @property {string} id
 * @property {Array<RuleMetricsView>} metrics - One entry per node.
 * @property {string} rawsql
 */

/**
 * A subscription to add to a client.
 * @typedef {Object} SubscribeRequest
 * @property {string} clientid - The client to subscribe; it must be connected.
 * @property {number} [qos] - 0, 1 or 2 (default 0).
 * @property {string|null} [topic] - The topic filter (or use `topics`).
 * @property {string|null} [topics] - Several topic filters, comma-separated.
 */

/**
 * The result of one entry of a batch.
 * @typedef {Object} SubscriptionBatchResult
 * @property {string} clientid
 * @property {number} code - 0 done; otherwise the EMQX code of the error.
 * @property {string|null} [message]
 * @property {string} topic - The entry's topic (or topics) as given.
 */

/**
 * One subscription of a session.
 * @typedef {Object} SubscriptionView
 * @property {string} clientid
 * @property {string} node
 * @property {number} qos
 * @property {string} topic
 */

/**
 * A subscription to remove from a client.
 * @typedef {Object} UnsubscribeRequest
 * @property {string} clientid - The client to unsubscribe; it must be connected.
 * @property {string|null} [topic] - The topic filter (or use `topics`).
 * @property {string|null} [topics] - Several topic filters, comma-separated.
 */

/**
 * A user, by username.
 * @typedef {Object} UsernameView
 * @property {string} username
 */

/**
 * @callback Send
 * @param {string} method
 * @param {string} path
 * @param {{query?: Object<string, *>, body?: *, text?: boolean}} options
 * @returns {Promise<*>}
 */

const p = encodeURIComponent;

/** @param {Send} send */
export function createClient(send) {
  return {
    /**
     * List every rule, in evaluation order.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    listAclRules: (query) => send("GET", `/acl`, { query }),

    /**
     * Add rules: one object or an array (all or nothing).
     * @param {NewRules} body
     * @returns {Promise<Data_AddedRules>}
     */
    addRules: (body) => send("POST", `/acl`, { body }),

    /**
     * List the rules that apply to every client.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    listAllRules: (query) => send("GET", `/acl/$all`, { query }),

    /**
     * Delete the every-client rule on a topic.
     * @param {string} topic - The rule's topic, percent-encoded (`a%2F%23` for `a/#`)
     * @returns {Promise<Done>}
     */
    deleteAllRule: (topic) => send("DELETE", `/acl/$all/topic/${p(topic)}`, {}),

    /**
     * List the rules of every client id.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    listClientidRules: (query) => send("GET", `/acl/clientid`, { query }),

    /**
     * List the rules of one client id.
     * @param {string} clientid - Client id (percent-encoded)
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    rulesOfClientid: (clientid, query) => send("GET", `/acl/clientid/${p(clientid)}`, { query }),

    /**
     * Delete a client id's rule on a topic.
     * @param {string} clientid - Client id (percent-encoded)
     * @param {string} topic - The rule's topic, percent-encoded (`a%2F%23` for `a/#`)
     * @returns {Promise<Done>}
     */
    deleteClientidRule: (clientid, topic) => send("DELETE", `/acl/clientid/${p(clientid)}/topic/${p(topic)}`, {}),

    /**
     * List the rules of every username.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    listUsernameRules: (query) => send("GET", `/acl/username`, { query }),

    /**
     * List the rules of one username.
     * @param {string} username - Username (percent-encoded)
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_AclRuleView>}
     */
    rulesOfUsername: (username, query) => send("GET", `/acl/username/${p(username)}`, { query }),

    /**
     * Delete a username's rule on a topic.
     * @param {string} username - Username (percent-encoded)
     * @param {string} topic - The rule's topic, percent-encoded (`a%2F%23` for `a/#`)
     * @returns {Promise<Done>}
     */
    deleteUsernameRule: (username, topic) => send("DELETE", `/acl/username/${p(username)}/topic/${p(topic)}`, {}),

    /**
     * The actions rules can use, with their params.
     * @returns {Promise<Data_Vec_ActionInfo>}
     */
    listActions: () => send("GET", `/actions`, {}),

    /**
     * List users identified by client id.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_ClientIdView>}
     */
    listClientids: (query) => send("GET", `/auth_clientid`, { query }),

    /**
     * Add users identified by client id: one object or an array (all or nothing).
     * @param {NewClientIds} body
     * @returns {Promise<Added>}
     */
    addClientids: (body) => send("POST", `/auth_clientid`, { body }),

    /**
     * Show a user identified by client id (never its password).
     * @param {string} clientid - Client id (percent-encoded)
     * @returns {Promise<Data_ClientIdView>}
     */
    getClientid: (clientid) => send("GET", `/auth_clientid/${p(clientid)}`, {}),

    /**
     * Change the password of a user identified by client id.
     * @param {string} clientid - Client id (percent-encoded)
     * @param {NewPassword} body
     * @returns {Promise<Done>}
     */
    updateClientid: (clientid, body) => send("PUT", `/auth_clientid/${p(clientid)}`, { body }),

    /**
     * Delete a user identified by client id.
     * @param {string} clientid - Client id (percent-encoded)
     * @returns {Promise<Done>}
     */
    deleteClientid: (clientid) => send("DELETE", `/auth_clientid/${p(clientid)}`, {}),

    /**
     * List users identified by username.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_UsernameView>}
     */
    listUsernames: (query) => send("GET", `/auth_username`, { query }),

    /**
     * Add users identified by username: one object or an array (all or nothing).
     * @param {NewUsernames} body
     * @returns {Promise<Added>}
     */
    addUsernames: (body) => send("POST", `/auth_username`, { body }),

    /**
     * Show a user identified by username (never its password).
     * @param {string} username - Username (percent-encoded)
     * @returns {Promise<Data_UsernameView>}
     */
    getUsername: (username) => send("GET", `/auth_username/${p(username)}`, {}),

    /**
     * Change the password of a user identified by username.
     * @param {string} username - Username (percent-encoded)
     * @param {NewPassword} body
     * @returns {Promise<Done>}
     */
    updateUsername: (username, body) => send("PUT", `/auth_username/${p(username)}`, { body }),

    /**
     * Delete a user identified by username.
     * @param {string} username - Username (percent-encoded)
     * @returns {Promise<Done>}
     */
    deleteUsername: (username) => send("DELETE", `/auth_username/${p(username)}`, {}),

    /**
     * List the bans in force, oldest first.
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_BanView>}
     */
    listBans: (query) => send("GET", `/banned`, { query }),

    /**
     * Ban a client id, username or peer address; connected clients are not kicked.
     * @param {NewBan} body
     * @returns {Promise<Data_BanView>}
     */
    addBan: (body) => send("POST", `/banned`, { body }),

    /**
     * Lift a ban.
     * @param {string} as - `clientid`, `username` or `peerhost`
     * @param {string} who - The banned value (percent-encoded)
     * @returns {Promise<Done>}
     */
    deleteBan: (as, who) => send("DELETE", `/banned/${p(as)}/${p(who)}`, {}),

    /**
     * List clients
     * @param {{_page?: number, _limit?: number, clientid?: string, username?: string, conn_state?: string, _like_clientid?: string}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     *   - `conn_state`: `connected` or `disconnected`.
     *   - `_like_clientid`: Client ids containing this.
     * @returns {Promise<Paged_ClientView>}
     */
    listClients: (query) => send("GET", `/clients`, { query }),

    /**
     * Get a client
     * @param {string} clientid
     * @returns {Promise<Data_Vec_ClientView>}
     */
    getClient: (clientid) => send("GET", `/clients/${p(clientid)}`, {}),

    /**
     * Kick a client
     * @param {string} clientid
     * @returns {Promise<Done>}
     */
    kickClient: (clientid) => send("DELETE", `/clients/${p(clientid)}`, {}),

    /**
     * Node metrics
     * @returns {Promise<Data_Vec_NodeMetrics>}
     */
    getMetrics: () => send("GET", `/metrics`, {}),

    /**
     * Publish a message
     * @param {PublishRequest} body
     * @returns {Promise<Published>}
     */
    publish: (body) => send("POST", `/mqtt/publish`, { body }),

    /**
     * Publish several messages
     * @param {Array<PublishRequest>} body
     * @returns {Promise<BatchPublished>}
     */
    publishBatch: (body) => send("POST", `/mqtt/publish_batch`, { body }),

    /**
     * Subscribe a client
     * @param {SubscribeRequest} body
     * @returns {Promise<Done>}
     */
    subscribe: (body) => send("POST", `/mqtt/subscribe`, { body }),

    /**
     * Subscribe clients in bulk
     * @param {Array<SubscribeRequest>} body
     * @returns {Promise<BatchDone>}
     */
    subscribeBatch: (body) => send("POST", `/mqtt/subscribe_batch`, { body }),

    /**
     * Unsubscribe a client
     * @param {UnsubscribeRequest} body
     * @returns {Promise<Done>}
     */
    unsubscribe: (body) => send("POST", `/mqtt/unsubscribe`, { body }),

    /**
     * Unsubscribe clients in bulk
     * @param {Array<UnsubscribeRequest>} body
     * @returns {Promise<BatchDone>}
     */
    unsubscribeBatch: (body) => send("POST", `/mqtt/unsubscribe_batch`, { body }),

    /**
     * List the resources.
     * @returns {Promise<Data_Vec_ResourceView>}
     */
    listResources: () => send("GET", `/resources`, {}),

    /**
     * Create a resource; the service must answer (else nothing is stored).
     * @param {NewResourceBody} body
     * @returns {Promise<Data_ResourceView>}
     */
    createResource: (body) => send("POST", `/resources`, { body }),

    /**
     * A resource and whether its service answers now.
     * @param {string} id - The resource's id
     * @returns {Promise<Data_ResourceView>}
     */
    getResource: (id) => send("GET", `/resources/${p(id)}`, {}),

    /**
     * Delete a resource no rule uses.
     * @param {string} id - The resource's id
     * @returns {Promise<Done>}
     */
    deleteResource: (id) => send("DELETE", `/resources/${p(id)}`, {}),

    /**
     * List the rules with their metrics.
     * @returns {Promise<Data_Vec_RuleView>}
     */
    listRules: () => send("GET", `/rules`, {}),

    /**
     * Create a rule; it applies at once. A bad statement, an unknown action or a missing
     * resource is refused and nothing is stored.
     * @param {NewRuleBody} body
     * @returns {Promise<Data_RuleView>}
     */
    createRule: (body) => send("POST", `/rules`, { body }),

    /**
     * A rule with its metrics.
     * @param {string} id - The rule's id
     * @returns {Promise<Data_RuleView>}
     */
    getRule: (id) => send("GET", `/rules/${p(id)}`, {}),

    /**
     * Change a rule (statement, actions, description, enabled); it applies at once.
     * @param {string} id - The rule's id
     * @param {RuleUpdateBody} body
     * @returns {Promise<Data_RuleView>}
     */
    updateRule: (id, body) => send("PUT", `/rules/${p(id)}`, { body }),

    /**
     * Delete a rule and what its actions still had buffered.
     * @param {string} id - The rule's id
     * @returns {Promise<Done>}
     */
    deleteRule: (id) => send("DELETE", `/rules/${p(id)}`, {}),

    /**
     * List subscriptions
     * @param {{_page?: number, _limit?: number}} [query]
     *   - `_page`: Page number, from 1 (default 1).
     *   - `_limit`: Page size, 1 to 10000 (default 10000).
     * @returns {Promise<Paged_SubscriptionView>}
     */
    listSubscriptions: (query) => send("GET", `/subscriptions`, { query }),

    /**
     * A client's subscriptions
     * @param {string} clientid
     * @returns {Promise<Data_Vec_SubscriptionView>}
     */
    clientSubscriptions: (clientid) => send("GET", `/subscriptions/${p(clientid)}`, {}),

  };
}
