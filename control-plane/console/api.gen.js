// Generated from the OpenAPI document "Skyport control plane API" 0.1.0 by `skyport console-client`
// (see README, "Web console"): do not edit. A test regenerates and diffs it.
//
// createClient(send) returns one function per operation. Path parameters come first,
// then the JSON body (if the operation takes one), then the query parameters as an
// object; `send(method, path, { query, body, text })` makes the request (`text`:
// the answer is not JSON) and resolves to the decoded answer.

/**
 * One of a rule's active alerts.
 * @typedef {Object} ActiveAlertView
 * @property {string} deployment_id
 * @property {string|null} [fired_at]
 * @property {string|null} [last_notified_at]
 * @property {string} message - What the evaluation saw when it last changed the alert.
 * @property {number} notifications - Notifications sent: the first and the repeats.
 * @property {string} since - When the condition was first seen.
 * @property {AlertStatus} status
 * @property {string} subject - `<deployment id>`, `<deployment id>/tls` or `<deployment id>/domain/<name>`.
 */

/**
 * Body of `POST /deployments/{deployment_id}/domains`.
 * @typedef {Object} AddDomain
 * @property {string|null} [certificate] - PEM certificate chain for the domain (leaf first). Without it, Skyport's CA issues one (see `GET /deployments/{id}/ca.pem`).
 * @property {string} domain - Host name clients will use, e.g. `mqtt.example.com`. Unicode names are stored as punycode; `*.example.com` needs an uploaded certificate covering it.
 * @property {string|null} [private_key] - PEM private key of `certificate`, unencrypted; stored encrypted, never returned.
 */

/**
 * Body of `POST /projects/{project_id}/members`.
 * @typedef {Object} AddMember
 * @property {string} email - E-mail address of an existing console user.
 * @property {Role} role
 */

/**
 * Whether an add-on is in force on the broker yet.
 * @typedef {"provisioning"|"active"} AddOnStatus
 */

/**
 * A project's channels.
 * @typedef {Object} AlertChannelList
 * @property {Array<AlertChannelView>} items
 */

/**
 * An alert channel as listed: never its secret.
 * @typedef {(ChannelTarget & {created_at: string, id: string, name: string, project_id: string})} AlertChannelView
 */

/**
 * A project's rules.
 * @typedef {Object} AlertRuleList
 * @property {Array<AlertRuleView>} items
 */

/**
 * Body of `POST /projects/{project_id}/alert-rules` and `PUT …/{rule_id}` (which
 * replaces the rule).
 * @typedef {Object} AlertRuleSpec
 * @property {Array<string>} [channel_ids] - Channels of the project to notify (at most 16); empty: alerts are only in the event log.
 * @property {Condition} condition
 * @property {string|null} [deployment_id] - The one deployment of the project to watch; absent or `null`: all of them, including those created later.
 * @property {boolean} [enabled] - Default `true`. Disabling a rule drops its active alerts without notifying.
 * @property {string} name - 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 * @property {number|null} [repeat_interval_seconds] - Notify again this often (1 to 604800 seconds) while the alert stays active; absent or `null`: once.
 */

/**
 * An alert rule with its active alerts.
 * @typedef {Object} AlertRuleView
 * @property {Array<ActiveAlertView>} alerts - Pending and firing alerts, by subject.
 * @property {Array<string>} channel_ids
 * @property {Condition} condition
 * @property {string} created_at
 * @property {string|null} [deployment_id]
 * @property {boolean} enabled
 * @property {string} id
 * @property {string} name
 * @property {string} project_id
 * @property {number|null} [repeat_interval_seconds]
 * @property {string} updated_at
 */

/**
 * Whether an alert is waiting for its condition to hold long enough, or has fired.
 * @typedef {"pending"|"firing"} AlertStatus
 */

/**
 * All keys of a project.
 * @typedef {Object} ApiKeyList
 * @property {Array<ApiKeyView>} items
 */

/**
 * An API key as listed: never its secret.
 * @typedef {Object} ApiKeyView
 * @property {string} created_at
 * @property {string} id
 * @property {string} name
 * @property {string} prefix - First characters of the secret, to recognise the key.
 * @property {string} project_id
 * @property {Role} role
 */

/**
 * A deployment API key as listed: never its secret.
 * @typedef {(Delivery & {app_id: string, created_at: string, name: string, read_only: boolean, session_bound: boolean})} AppKeyView
 */

/**
 * Whether the running broker has a change in force yet.
 * @typedef {"pending"|"applied"} ApplyStatus
 */

/**
 * The authentication chain (body of `PUT`, answer of `GET`).
 * @typedef {Object} AuthenticationSpec
 * @property {boolean} [allow_anonymous] - Let in clients that no source accepts or refuses (every source said `ignore`, or the chain is empty). Default false.
 * @property {Array<SourceSpec>} sources - Sources asked in order, at most 8, at most one `built_in`.
 */

/**
 * The authentication chain as stored (defaults filled in), with warnings about it.
 * @typedef {(Delivery & {allow_anonymous: boolean, sources: Array<SourceSpec>, warnings: Array<Warning>})} AuthenticationUpdated
 */

/**
 * The authentication chain, and whether the running broker has it in force (a `PUT`
 * accepts this document back, ignoring `revision`, `applied` and `apply_status`).
 * @typedef {(Delivery & {allow_anonymous: boolean, sources: Array<SourceSpec>})} AuthenticationView
 */

/**
 * The authorization chain (body of `PUT`, answer of `GET`).
 * @typedef {Object} AuthorizationSpec
 * @property {boolean} [disconnect_on_deny] - Also disconnect a client whose PUBLISH is denied (MQTT 3.1.1 cannot tell it otherwise). Default false.
 * @property {NoMatch} [no_match] - The decision when no source matches: `allow` (EMQX's default) or `deny`.
 * @property {Array<SourceSpec>} sources - Sources asked in order, first decision wins; at most 8, at most one `built_in`.
 */

/**
 * The authorization chain as stored (defaults filled in), with warnings about it.
 * @typedef {(Delivery & {disconnect_on_deny: boolean, no_match: NoMatch, sources: Array<SourceSpec>, warnings: Array<Warning>})} AuthorizationUpdated
 */

/**
 * The authorization chain, and whether the running broker has it in force (a `PUT`
 * accepts this document back, ignoring `revision`, `applied` and `apply_status`).
 * @typedef {(Delivery & {disconnect_on_deny: boolean, no_match: NoMatch, sources: Array<SourceSpec>})} AuthorizationView
 */

/**
 * Who issued a domain's certificate.
 * @typedef {"uploaded"|"skyport"} CertSource
 */

/**
 * Kinds of channel.
 * @typedef {"webhook"|"email"} ChannelKind
 */

/**
 * Where a channel sends alerts.
 * @typedef {({type: "webhook", url: string}|{to: Array<string>, type: "email"})} ChannelTarget
 */

/**
 * What a rule watches, on every deployment it applies to.
 * @typedef {({kind: "sessions", percent: number}|{kind: "tps", percent: number}|{bytes: number, kind: "traffic", window_minutes: number}|{include_stopped?: boolean, kind: "deployment_not_running", minutes: number}|{days: number, kind: "certificate_expiring"}|{checks: number, kind: "domain_verification_failing"})} Condition
 */

/**
 * Body of `POST /projects/{project_id}/alert-channels`.
 * @typedef {Object} CreateAlertChannel
 * @property {string} name - 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 * @property {Array<string>|null} [to] - Email: 1 to 16 recipient addresses.
 * @property {ChannelKind} type
 * @property {string|null} [url] - Webhooks: an absolute `http` or `https` URL, without credentials.
 */

/**
 * Body of `POST /projects/{project_id}/api-keys`.
 * @typedef {Object} CreateApiKey
 * @property {string} name - A label for the key: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 * @property {(null|Role)} [role]
 */

/**
 * Body of `POST /deployments/{deployment_id}/app-keys`.
 * @typedef {Object} CreateAppKey
 * @property {string} name - A label for the key: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 * @property {boolean} [read_only] - A key that may only read through the deployment API (`GET`); the broker answers anything else with 403 (`forbidden_role`). A project `viewer` may create only this kind, and only session-bound: the one its web console reads clients, subscriptions, users, rules and bans with. Default false.
 * @property {boolean} [session_bound] - Delete the key when the web-console sign-in session creating it ends (sign-out or expiry), as the console does for the key it uses itself. Needs a session cookie: with an API key it is 422 `session_required`. Default false.
 */

/**
 * Body of `POST /deployments`.
 * @typedef {Object} CreateDeployment
 * @property {string} name - Name, unique in the project: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 * @property {Plan} plan
 * @property {(null|Tier)} [tier]
 * @property {string|null} [version] - Broker version; defaults to the newest supported.
 */

/**
 * Body of `POST /projects`.
 * @typedef {Object} CreateProject
 * @property {string} name - Unique project name: 1 to 64 letters, digits, spaces, `-`, `_` or `.`.
 */

/**
 * Body of `POST /users`.
 * @typedef {Object} CreateUser
 * @property {string} email - E-mail address the user signs in with (kept in lower case).
 * @property {string} password - At least 10 characters; stored as an argon2id hash, never shown again.
 */

/**
 * A newly created channel; a webhook's with its signing secret, shown only now.
 * @typedef {(AlertChannelView & {secret?: string|null})} CreatedAlertChannel
 */

/**
 * A newly created key, with its secret: the only time the secret is shown.
 * @typedef {(ApiKeyView & {secret: string})} CreatedApiKey
 */

/**
 * A newly created app key, with its secret: the only time the secret is shown.
 * @typedef {(AppKeyView & {app_secret: string})} CreatedAppKey
 */

/**
 * Where a change stands on its way to the broker.
 * @typedef {Object} Delivery
 * @property {boolean} applied - Whether the running broker has applied `revision`.
 * @property {ApplyStatus} apply_status - `pending` until the running broker has applied `revision`, then `applied`.
 * @property {number} revision - The deployment revision at which this last changed (0: never changed).
 */

/**
 * One deployment's usage in the month.
 * @typedef {(UsageTotals & {deployment_id: string, name?: string|null})} DeploymentUsageView
 */

/**
 * A deployment: its spec, and the status the reconciler observed.
 * @typedef {Object} DeploymentView
 * @property {number} [applied_revision] - The revision of the settings (app keys, authentication, TLS, domains, ...) the running broker reported having in force; a resource whose `revision` is above it is `pending`. It does not advance while the deployment is stopped.
 * @property {string} created_at
 * @property {DesiredState} desired_state - What the deployment was asked to be doing.
 * @property {(null|Endpoints)} [endpoints]
 * @property {number} generation - Bumped on every spec change.
 * @property {string} id
 * @property {string} name
 * @property {(null|NetworkView)} [network]
 * @property {number} observed_generation - The generation the running broker reflects.
 * @property {Plan} plan
 * @property {string} project_id
 * @property {Status} status
 * @property {string|null} [status_reason] - Why the status is what it is, e.g. the failure reason.
 * @property {Tier} tier
 * @property {string} updated_at
 * @property {string} version
 */

/**
 * What the user asked the deployment to be doing.
 * @typedef {"running"|"stopped"} DesiredState
 */

/**
 * The DNS record that points a custom domain at its deployment.
 * @typedef {Object} DnsRecord
 * @property {string} name - The name to create the record for (the custom domain).
 * @property {string} type - `CNAME` to the deployment's default host; `A`/`AAAA` when that host is an address.
 * @property {string} value - What the record must point to.
 */

/**
 * The certificate a domain is served with (never its key).
 * @typedef {Object} DomainCertificate
 * @property {string} expires_at
 * @property {CertSource} source
 */

/**
 * `{"items": [...]}`: a deployment's domains, by name (at most 50, so never paged).
 * @typedef {Object} DomainList
 * @property {Array<DomainView>} items
 * @property {string|null} [next_cursor] - Always absent: the list is never cut.
 */

/**
 * Where a domain stands.
 * @typedef {"pending_dns"|"active"} DomainStatus
 */

/**
 * A custom domain.
 * @typedef {(Delivery & {certificate: DomainCertificate, checks: number, created_at: string, dns_record?: (null|DnsRecord), domain: string, last_checked_at?: string|null, next_check_at?: string|null, observed?: Object|null, status: DomainStatus, verified_at?: string|null})} DomainView
 */

/**
 * Where clients reach a deployment. Absent URLs are listeners the plan does not expose.
 * @typedef {Object} Endpoints
 * @property {string} api - Base URL of the deployment's HTTP API (the v4 API lives under `{api}/api/v4`).
 * @property {string} host - Host name or address clients connect to.
 * @property {string|null} [mqtt] - Plain MQTT over TCP, e.g. `mqtt://host:1883`.
 * @property {string|null} [mqtts] - MQTT over TLS, e.g. `mqtts://host:8883`.
 * @property {string|null} [ws] - MQTT over WebSocket, e.g. `ws://host:8083/mqtt`.
 * @property {string|null} [wss] - MQTT over secure WebSocket, e.g. `wss://host:8084/mqtt`.
 */

/**
 * Type of a deployment event.
 * @typedef {"deployment.created"|"deployment.provisioning"|"deployment.running"|"deployment.stopped"|"deployment.started"|"deployment.tier_changed"|"deployment.failed"|"deployment.deleted"|"broker.restarted"|"tls.updated"|"tls.removed"|"domain.added"|"domain.verified"|"domain.removed"|"nat_gateway.created"|"nat_gateway.deleted"|"internal_endpoint.created"|"internal_endpoint.updated"|"internal_endpoint.deleted"|"alert.fired"|"alert.resolved"|"certificate.renewed"|"certificate.expiring"} EventType
 */

/**
 * One event.
 * @typedef {Object} EventView
 * @property {string} actor - `api_key:<id>` or `user:<id>` for an action through the API, `system` for Skyport's own.
 * @property {string} deployment_id
 * @property {*} details - Type-specific details, e.g. the failure `reason` or the tier change.
 * @property {string} id
 * @property {string} time - When it happened.
 * @property {EventType} type
 */

/**
 * Liveness.
 * @typedef {Object} Health
 * @property {string} status - Always `ok`.
 */

/**
 * A deployment's internal endpoint.
 * @typedef {(Delivery & {address?: string|null, allowed_cidrs: Array<string>, created_at: string, endpoints: InternalUrls, status: AddOnStatus, updated_at: string})} InternalEndpointView
 */

/**
 * The MQTT URLs of the internal endpoint (the public ports, at its address).
 * @typedef {Object} InternalUrls
 * @property {string|null} [mqtt]
 * @property {string|null} [mqtts]
 * @property {string|null} [ws]
 * @property {string|null} [wss]
 */

/**
 * A project's members.
 * @typedef {Object} MemberList
 * @property {Array<MemberView>} items
 */

/**
 * A project member.
 * @typedef {Object} MemberView
 * @property {string} created_at - When the user joined the project.
 * @property {Role} role
 * @property {UserView} user
 */

/**
 * HTTP method of an HTTP source.
 * @typedef {"get"|"post"} Method
 */

/**
 * Usage of one bucket `[ts, ts + step)`.
 * 
 * Counters (`messages*`, `retained_out`, `http_published`, `bytes_*`, `dropped`) are
 * totals over the bucket. `*_max` are the highest value of any second in the bucket.
 * `sessions_avg` is the session-seconds of the bucket divided by its length in seconds
 * (the time-weighted mean session count, seconds without reports counting as zero);
 * `tps_avg` is `messages` divided by the bucket's length in seconds. Steps of whole hours
 * are served from hourly roll-ups (kept 90 days by default), other steps from per-minute
 * rows (kept 7 days by default); older buckets read as zero.
 * @typedef {Object} MetricsPoint
 * @property {number} bytes_in - MQTT application-layer bytes received.
 * @property {number} bytes_out - MQTT application-layer bytes sent.
 * @property {number} connected_max - Highest connected-client count in any second.
 * @property {number} dropped - Messages dropped (e.g. offline queue overflow).
 * @property {number} http_published - Messages published through the deployment HTTP API.
 * @property {number} messages - The TPS-counted total: `messages_in + messages_out + retained_out + http_published`.
 * @property {number} messages_in - PUBLISH received from clients.
 * @property {number} messages_out - PUBLISH sent to subscribers.
 * @property {number} offline_persistent_max - Highest persistent-offline session count in any second.
 * @property {number} retained_out - Retained messages delivered.
 * @property {number} sessions_avg - Session-seconds / bucket seconds.
 * @property {number} sessions_max - Highest session count (connected plus persistent offline) in any second.
 * @property {number} tps_avg - `messages` / bucket seconds.
 * @property {number} tps_max - Highest messages per second (TPS) in any second.
 * @property {string} ts - Start of the bucket.
 */

/**
 * A deployment's usage series.
 * @typedef {Object} MetricsSeries
 * @property {Array<MetricsPoint>} points - One point per bucket intersecting `[from, to)`, oldest first; buckets without usage are zero.
 */

/**
 * A node's usage in one UTC minute (since its previous report). Counters are at most 10^15.
 * @typedef {Object} MinuteUsage
 * @property {number} bytes_in - MQTT application-layer bytes received.
 * @property {number} bytes_out - MQTT application-layer bytes sent.
 * @property {number} connected_max - Highest connected-client count in any sampled second.
 * @property {number} dropped - Messages dropped.
 * @property {number} http_published - Messages published through the deployment HTTP API.
 * @property {number} messages_in - PUBLISH packets received from clients.
 * @property {number} messages_out - PUBLISH packets sent to subscribers.
 * @property {string} minute - Start of the minute (RFC 3339, seconds zero), e.g. `2026-11-29T07:25:00Z`.
 * @property {number} offline_persistent_max - Highest persistent-offline session count in any sampled second.
 * @property {number} retained_out - Retained messages delivered.
 * @property {number} seconds - Number of sampled seconds (at most 60).
 * @property {number} session_seconds - Sum over the sampled seconds of the session count.
 * @property {number} sessions_max - Highest session count in any sampled second.
 * @property {number} tps_max - Highest messages-per-second (TPS rule) in any sampled second.
 */

/**
 * A deployment's NAT gateway.
 * @typedef {(Delivery & {created_at: string, egress_addresses: Array<string>, status: AddOnStatus})} NatGatewayView
 */

/**
 * @typedef {Object} NetworkDomain
 * @property {string} domain
 * @property {DomainStatus} status
 */

/**
 * @typedef {Object} NetworkInternalEndpoint
 * @property {string|null} [address] - Absent until the platform assigns one.
 * @property {Array<string>} allowed_cidrs
 */

/**
 * A deployment's networking add-ons, in brief (each has its own resource for details).
 * @typedef {Object} NetworkView
 * @property {Array<NetworkDomain>} [domains] - Custom domains with their status (`pending_dns` or `active`).
 * @property {Array<string>} [egress_addresses] - The NAT gateway's egress addresses; empty without one.
 * @property {(null|NetworkInternalEndpoint)} [internal_endpoint]
 */

/**
 * What no source decided, or a decision.
 * @typedef {"allow"|"deny"} NoMatch
 */

/**
 * One page of a list.
 * @typedef {Object} Paged_AppKeyView
 * @property {Array<(Delivery & {app_id: string, created_at: string, name: string, read_only: boolean, session_bound: boolean})>} items
 * @property {string|null} [next_cursor] - Cursor for the next page; absent on the last page.
 */

/**
 * One page of a list.
 * @typedef {Object} Paged_DeploymentView
 * @property {Array<{applied_revision?: number, created_at: string, desired_state: DesiredState, endpoints?: (null|Endpoints), generation: number, id: string, name: string, network?: (null|NetworkView), observed_generation: number, plan: Plan, project_id: string, status: Status, status_reason?: string|null, tier: Tier, updated_at: string, version: string}>} items
 * @property {string|null} [next_cursor] - Cursor for the next page; absent on the last page.
 */

/**
 * One page of a list.
 * @typedef {Object} Paged_EventView
 * @property {Array<{actor: string, deployment_id: string, details: *, id: string, time: string, type: EventType}>} items
 * @property {string|null} [next_cursor] - Cursor for the next page; absent on the last page.
 */

/**
 * One page of a list.
 * @typedef {Object} Paged_ProjectView
 * @property {Array<{created_at: string, id: string, name: string, role: Role}>} items
 * @property {string|null} [next_cursor] - Cursor for the next page; absent on the last page.
 */

/**
 * One page of a list.
 * @typedef {Object} Paged_UserView
 * @property {Array<{created_at: string, email: string, id: string}>} items
 * @property {string|null} [next_cursor] - Cursor for the next page; absent on the last page.
 */

/**
 * Service plan, as EMQX Cloud sells them.
 * @typedef {"serverless"|"dedicated"|"premium"} Plan
 */

/**
 * An RFC 9457 problem document with a stable machine-readable `code`.
 * @typedef {Object} Problem
 * @property {string} code - Stable, machine-readable problem code, e.g. `invalid_name` or `name_taken`.
 * @property {string} detail - What went wrong, for humans.
 * @property {string|null} [field] - The request field the problem is about, when there is one (e.g. `tier.max_tps`).
 * @property {number} status - HTTP status code.
 * @property {string} title - Short summary of the HTTP status.
 * @property {string} type - Always `about:blank`; `code` identifies the problem.
 */

/**
 * A project's usage in a month, per deployment (including deleted ones) and in total.
 * @typedef {Object} ProjectUsage
 * @property {Array<DeploymentUsageView>} deployments - Deployments with usage in the month, by id.
 * @property {string} month - `YYYY-MM`.
 * @property {string} project_id
 * @property {UsageTotals} total
 */

/**
 * A project.
 * @typedef {Object} ProjectView
 * @property {string} created_at
 * @property {string} id
 * @property {string} name
 * @property {Role} role - The caller's role in the project (`owner` for the admin token).
 */

/**
 * Body of `PUT /deployments/{deployment_id}/internal-endpoint`.
 * @typedef {Object} PutInternalEndpoint
 * @property {Array<string>} allowed_cidrs - Client ranges admitted, e.g. `["10.1.0.0/16"]`; a bare address is one host. 1 to 64 ranges, without host bits set.
 */

/**
 * Body of `PUT /deployments/{deployment_id}/tls`.
 * @typedef {Object} PutTls
 * @property {string|null} [ca_cert] - PEM CA certificate(s) client certificates must chain to: required for `two-way`, refused for `one-way`.
 * @property {string} cert - PEM certificate chain, leaf first, then every intermediate; X.509 v3, valid now.
 * @property {string} key - PEM private key of the leaf (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted. Stored encrypted, never returned.
 * @property {TlsType} tls_type
 */

/**
 * A project's quota.
 * @typedef {Object} QuotaView
 * @property {boolean} default - Whether this is the control plane's default rather than the project's own.
 * @property {number} max_deployments - Most deployments the project may have (those being deleted do not count).
 */

/**
 * Readiness: whether this replica can serve the API.
 * @typedef {Object} Readiness
 * @property {boolean} database - Whether the database answered.
 * @property {boolean} is_leader - Whether this replica is the leader.
 * @property {string|null} [leader] - The replica running the reconciler, if one leads now.
 * @property {string} replica - This replica's name.
 * @property {string} status - `ready` when the database answers and a leader is known, else `not_ready`.
 */

/**
 * The report is in (applied now or before).
 * @typedef {Object} ReportAck
 * @property {number} acked_seq - Every report of this node and epoch up to this sequence number is applied; the node may forget them.
 */

/**
 * What a member may do in a project; each role includes the ones below it.
 * @typedef {"viewer"|"developer"|"owner"} Role
 */

/**
 * `409 seq_gap`: earlier reports of the epoch are missing.
 * @typedef {(Problem & {expected_seq: number})} SeqGapProblem
 */

/**
 * A signed-in session.
 * @typedef {Object} SessionView
 * @property {string} csrf_token - Send it in `X-CSRF-Token` with every unsafe request (POST, PUT, PATCH, DELETE) made with the session cookie.
 * @property {string} expires_at
 * @property {UserView} user
 */

/**
 * A deployment's persistent-session settings.
 * @typedef {Object} Sessions
 * @property {number} max_queued_messages - Messages kept for one offline session, 1 to 100000.
 * @property {number} max_session_expiry_secs - The most seconds an MQTT 5 client's `session_expiry_interval` is honoured for. At most 604800.
 * @property {number} session_expiry_secs - Seconds an MQTT 3.1.1 persistent session (`clean_session=false`) outlives its connection; 0 ends it at disconnect. At most 604800 (7 days).
 */

/**
 * The persistent-session settings, and whether the running broker has them in force
 * (a `PUT` accepts this document back, ignoring `revision`, `applied` and
 * `apply_status`).
 * @typedef {(Delivery & {max_queued_messages: number, max_session_expiry_secs: number, session_expiry_secs: number})} SessionsView
 */

/**
 * Body of `PUT /projects/{id}/quota`.
 * @typedef {Object} SetQuota
 * @property {number|null} [max_deployments] - Most deployments the project may have, 0 to 100000; `null` returns to the control plane's default.
 */

/**
 * Body of `PUT /projects/{project_id}/members/{user_id}`.
 * @typedef {Object} SetRole
 * @property {Role} role
 */

/**
 * Body of `POST /session`.
 * @typedef {Object} SignIn
 * @property {string} email - The user's e-mail address.
 * @property {string} password - The user's password.
 */

/**
 * One source of a chain. `built_in` takes no other field; `http` needs `url`, the rest
 * have defaults.
 * 
 * Templates (`url`, header values, body values) may use `%u` username, `%c` client id,
 * `%a` peer address, `%r` protocol (`mqtt`, `mqtts`, `ws`, `wss`), `%P` password, `%p`
 * listener port and, in authorization sources only, `%A` action (`publish` or
 * `subscribe`) and `%t` topic; `%%` is a literal `%`. The service answers 200 to allow,
 * 200 with body `ignore` to defer to the next source; anything else denies.
 * @typedef {Object} SourceSpec
 * @property {Object<string, string>|null} [body] - Request parameters, name → template.
 * @property {number|null} [cache_ttl_ms] - How long a decision is reused for the same request, 0 to 3600000 ms (default 60000; 0 disables the cache).
 * @property {Object<string, string>|null} [headers] - Request headers, name → template.
 * @property {(null|Method)} [method]
 * @property {number|null} [pool_size] - Most idle connections kept open to the service, 1 to 1024 (default 8).
 * @property {number|null} [timeout_ms] - Request timeout, 1 to 60000 ms (default 5000); a timeout denies.
 * @property {SourceType} type
 * @property {string|null} [url] - Absolute `http` or `https` URL (required for `http`); placeholders allowed in the path and query.
 */

/**
 * Kind of a chain source.
 * @typedef {"built_in"|"http"} SourceType
 */

/**
 * Observed lifecycle status of a deployment.
 * @typedef {"provisioning"|"running"|"updating"|"stopping"|"stopped"|"starting"|"deleting"|"failed"} Status
 */

/**
 * Capacity limits of a deployment.
 * @typedef {Object} Tier
 * @property {number} max_sessions - Maximum sessions (connected plus persistent offline), 1 to 1,000,000.
 * @property {number} max_tps - Maximum messages per second, 1 to 1,000,000.
 */

/**
 * Where the certificate in use comes from.
 * @typedef {"custom"|"skyport"} TlsSource
 */

/**
 * Validity of the certificate in use.
 * @typedef {"active"|"expiring"|"expired"} TlsStatus
 */

/**
 * One-way (server certificate only) or two-way (clients present certificates too).
 * @typedef {"one-way"|"two-way"} TlsType
 */

/**
 * The deployment's TLS configuration; never the private key.
 * @typedef {(Delivery & {expires_at?: string|null, issuer: string, sans: Array<string>, source: TlsSource, status: TlsStatus, subject?: string|null, tls_type: TlsType, updated_at?: string|null})} TlsView
 */

/**
 * Body of `PATCH /deployments/{id}`: fields present are changed.
 * @typedef {Object} UpdateDeployment
 * @property {string|null} [name]
 * @property {(null|Plan)} [plan]
 * @property {(null|Tier)} [tier]
 * @property {string|null} [version]
 */

/**
 * Body of a report: the usage delta since the node's previous report.
 * @typedef {Object} UsageReport
 * @property {string} deployment_id - The deployment the node serves; must be the node token's.
 * @property {number} epoch - The node process's lifetime: its start time in Unix milliseconds.
 * @property {Array<MinuteUsage>} minutes - Usage since the previous report, per UTC minute (at most 300 entries).
 * @property {string} node_id - The reporting node (e.g. its pod name), 1 to 128 bytes.
 * @property {number} seq - 1 for the epoch's first report, then one more for each report.
 */

/**
 * Billable usage totals over a month.
 * @typedef {Object} UsageTotals
 * @property {number} bytes_in - MQTT application-layer bytes received.
 * @property {number} bytes_out - MQTT application-layer bytes sent.
 * @property {number} messages - TPS-counted messages: in + out to subscribers + retained delivered + HTTP-published.
 * @property {number} peak_sessions - Highest session count in any second. In `total`: the sum of the deployments' peaks.
 * @property {number} peak_tps - Highest TPS in any second. In `total`: the sum of the deployments' peaks.
 * @property {number} session_minutes - Session-seconds / 60: sessions (connected plus persistent offline) integrated over time.
 */

/**
 * A console user.
 * @typedef {Object} UserView
 * @property {string} created_at
 * @property {string} email
 * @property {string} id
 */

/**
 * Something accepted but worth knowing, e.g. an HTTP source that did not answer.
 * @typedef {Object} Warning
 * @property {string} code - Stable code, e.g. `http_source_unreachable`.
 * @property {string} detail
 * @property {number} source - Index of the source concerned in `sources`.
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
     * List the project's deployments.
     * @param {{limit?: number, cursor?: string}} [query]
     *   - `limit`: Items per page, 1 to 100 (default 20).
     *   - `cursor`: Opaque cursor from a previous page's `next_cursor`.
     * @returns {Promise<Paged_DeploymentView>}
     */
    listDeployments: (query) => send("GET", `/deployments`, { query }),

    /**
     * Create a deployment. Answers 202 with status `provisioning`; poll until `running`.
     * A project has at most its quota of deployments (`GET /projects/{id}/quota`, 20 by
     * default): beyond it, 409 `quota_exceeded`.
     * @param {CreateDeployment} body
     * @returns {Promise<DeploymentView>}
     */
    createDeployment: (body) => send("POST", `/deployments`, { body }),

    /**
     * Get a deployment with its status, endpoints and networking add-ons (`network`).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<DeploymentView>}
     */
    getDeployment: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}`, {}),

    /**
     * Delete a deployment: its broker is stopped and its data removed. Answers 202 with
     * status `deleting`; the deployment then disappears (404).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<DeploymentView>}
     */
    deleteDeployment: (deployment_id) => send("DELETE", `/deployments/${p(deployment_id)}`, {}),

    /**
     * Change a deployment: rename (200), or change plan, tier or version (202: the broker
     * is reconfigured and the status goes through `updating`).
     * @param {string} deployment_id - Deployment id
     * @param {UpdateDeployment} body
     * @returns {Promise<DeploymentView>}
     */
    patchDeployment: (deployment_id, body) => send("PATCH", `/deployments/${p(deployment_id)}`, { body }),

    /**
     * List the deployment's app keys (without secrets).
     * @param {string} deployment_id - Deployment id
     * @param {{limit?: number, cursor?: string}} [query]
     *   - `limit`: Items per page, 1 to 100 (default 20).
     *   - `cursor`: Opaque cursor from a previous page's `next_cursor`.
     * @returns {Promise<Paged_AppKeyView>}
     */
    listAppKeys: (deployment_id, query) => send("GET", `/deployments/${p(deployment_id)}/app-keys`, { query }),

    /**
     * Create a key for the deployment's HTTP API. Answers once the running broker accepts
     * it (201), or with 202 and `applied: false` when it has not yet after the apply
     * timeout, with `?wait=false`, or while the deployment is stopped. Needs `developer`,
     * except for a read-only, session-bound key, which a signed-in `viewer` may create.
     * @param {string} deployment_id - Deployment id
     * @param {CreateAppKey} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<CreatedAppKey>}
     */
    createAppKey: (deployment_id, body, query) => send("POST", `/deployments/${p(deployment_id)}/app-keys`, { query, body }),

    /**
     * Revoke an app key. Answers 204 once the running broker refuses it, or 202 with
     * `applied: false` (apply timeout, `?wait=false`, stopped deployment).
     * @param {string} deployment_id - Deployment id
     * @param {string} app_id - App key id
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<Delivery|null>}
     */
    deleteAppKey: (deployment_id, app_id, query) => send("DELETE", `/deployments/${p(deployment_id)}/app-keys/${p(app_id)}`, { query }),

    /**
     * The deployment's authentication chain (the broker's default until one is set:
     * built-in users only, anonymous refused).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<AuthenticationView>}
     */
    getAuthentication: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/authentication`, {}),

    /**
     * Replace the deployment's authentication chain. HTTP sources are checked for
     * reachability (one second at most); an unreachable one is accepted with a warning.
     * @param {string} deployment_id - Deployment id
     * @param {AuthenticationSpec} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<AuthenticationUpdated>}
     */
    putAuthentication: (deployment_id, body, query) => send("PUT", `/deployments/${p(deployment_id)}/authentication`, { query, body }),

    /**
     * The deployment's authorization chain (the broker's default until one is set:
     * built-in ACL rules, `no_match` allow).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<AuthorizationView>}
     */
    getAuthorization: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/authorization`, {}),

    /**
     * Replace the deployment's authorization chain. HTTP sources are checked for
     * reachability (one second at most); an unreachable one is accepted with a warning.
     * @param {string} deployment_id - Deployment id
     * @param {AuthorizationSpec} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<AuthorizationUpdated>}
     */
    putAuthorization: (deployment_id, body, query) => send("PUT", `/deployments/${p(deployment_id)}/authorization`, { query, body }),

    /**
     * The CA certificate (PEM) that signs the deployment's server certificates: give it to
     * clients as their trust anchor (`mosquitto_pub --cafile ca.pem`).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<string>}
     */
    getCa: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/ca.pem`, { text: true }),

    /**
     * List the deployment's custom domains.
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<DomainList>}
     */
    listDomains: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/domains`, {}),

    /**
     * Add a custom domain. Answers 201 with status `pending_dns` and the DNS record to
     * create (`dns_record`): a CNAME to the deployment's default host (A/AAAA when that
     * host is an address). Skyport then checks DNS in the background with back-off, or at
     * once on `POST …/verify`. Not on serverless (409 `plan_not_supported`); a domain any
     * deployment already has is 409 `domain_taken`; the deployment must have run once
     * (409 `deployment_not_ready`, it has no host yet). Invalid names, mismatched or
     * expired certificates are 422 (`invalid_domain`, `certificate_incomplete`,
     * `wildcard_needs_certificate`, `certificate_domain_mismatch`, and the `tls_*` codes of
     * `PUT …/tls`).
     * @param {string} deployment_id - Deployment id
     * @param {AddDomain} body
     * @returns {Promise<DomainView>}
     */
    addDomain: (deployment_id, body) => send("POST", `/deployments/${p(deployment_id)}/domains`, { body }),

    /**
     * Get one custom domain, with what DNS answered at its last check.
     * @param {string} deployment_id - Deployment id
     * @param {string} domain - The custom domain
     * @returns {Promise<DomainView>}
     */
    getDomain: (deployment_id, domain) => send("GET", `/deployments/${p(deployment_id)}/domains/${p(domain)}`, {}),

    /**
     * Remove a custom domain: the broker stops serving it (clients connected through it
     * stay connected; new handshakes get the default certificate).
     * @param {string} deployment_id - Deployment id
     * @param {string} domain - The custom domain
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<Delivery|null>}
     */
    deleteDomain: (deployment_id, domain, query) => send("DELETE", `/deployments/${p(deployment_id)}/domains/${p(domain)}`, { query }),

    /**
     * Check the domain's DNS record now. A match makes it `active` (the broker serves it
     * within seconds); otherwise it stays `pending_dns` and `observed` says what DNS
     * answered. An active domain is returned as it is.
     * @param {string} deployment_id - Deployment id
     * @param {string} domain - The custom domain
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<DomainView>}
     */
    verifyDomain: (deployment_id, domain, query) => send("POST", `/deployments/${p(deployment_id)}/domains/${p(domain)}/verify`, { query }),

    /**
     * List a deployment's events, oldest first.
     * @param {string} deployment_id - Deployment id
     * @param {{type?: string, since?: string, until?: string, limit?: number, cursor?: string}} [query]
     *   - `type`: Only events of this type, e.g. `deployment.running`.
     *   - `since`: Only events at or after this time (RFC 3339).
     *   - `until`: Only events before this time (RFC 3339).
     *   - `limit`: Items per page, 1 to 100 (default 20).
     *   - `cursor`: Opaque cursor from a previous page's `next_cursor`.
     * @returns {Promise<Paged_EventView>}
     */
    listEvents: (deployment_id, query) => send("GET", `/deployments/${p(deployment_id)}/events`, { query }),

    /**
     * The deployment's internal endpoint (404 when it has none).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<InternalEndpointView>}
     */
    getInternalEndpoint: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/internal-endpoint`, {}),

    /**
     * Create the internal endpoint (201) or replace its allowed ranges (200). The broker
     * applies it without restarting. Not on serverless (409 `plan_not_supported`); 409
     * `internal_endpoint_unavailable` when the platform cannot make internal load
     * balancers; bad ranges are 422 `invalid_cidr`.
     * @param {string} deployment_id - Deployment id
     * @param {PutInternalEndpoint} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<InternalEndpointView>}
     */
    putInternalEndpoint: (deployment_id, body, query) => send("PUT", `/deployments/${p(deployment_id)}/internal-endpoint`, { query, body }),

    /**
     * Remove the internal endpoint: its listeners close (clients already connected through
     * it stay until they disconnect). Idempotent.
     * @param {string} deployment_id - Deployment id
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<Delivery|null>}
     */
    deleteInternalEndpoint: (deployment_id, query) => send("DELETE", `/deployments/${p(deployment_id)}/internal-endpoint`, { query }),

    /**
     * A deployment's usage over time: sessions, TPS, messages and traffic per bucket.
     * @param {string} deployment_id - Deployment id
     * @param {{from?: string, to?: string, step?: string}} [query]
     *   - `from`: Start of the range (RFC 3339, inclusive); defaults to one hour before `to`.
     *   - `to`: End of the range (RFC 3339, exclusive); defaults to now.
     *   - `step`: Bucket length, a whole number of minutes written as a duration: `1m` (default), `5m`, `1h`, `1d`, … Buckets are aligned on multiples of the step since the Unix epoch (`1d` buckets are UTC days); at most 1440 points per request.
     * @returns {Promise<MetricsSeries>}
     */
    deploymentMetrics: (deployment_id, query) => send("GET", `/deployments/${p(deployment_id)}/metrics`, { query }),

    /**
     * The deployment's NAT gateway (404 when it has none).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<NatGatewayView>}
     */
    getNatGateway: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/nat-gateway`, {}),

    /**
     * Create the deployment's NAT gateway (201), or return the existing one (200): its
     * egress addresses never change while it exists. Not on serverless (409
     * `plan_not_supported`); 409 `nat_gateway_unavailable` when the platform has no egress
     * addresses configured.
     * @param {string} deployment_id - Deployment id
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<NatGatewayView>}
     */
    putNatGateway: (deployment_id, query) => send("PUT", `/deployments/${p(deployment_id)}/nat-gateway`, { query }),

    /**
     * Remove the NAT gateway: outbound connections leave from the default address again.
     * Idempotent.
     * @param {string} deployment_id - Deployment id
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<Delivery|null>}
     */
    deleteNatGateway: (deployment_id, query) => send("DELETE", `/deployments/${p(deployment_id)}/nat-gateway`, { query }),

    /**
     * The deployment's persistent-session settings (the defaults until changed).
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<SessionsView>}
     */
    getSessions: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/sessions`, {}),

    /**
     * Replace the deployment's persistent-session settings. Out-of-range values are 422
     * `invalid_session_settings` (naming the field) and change nothing.
     * @param {string} deployment_id - Deployment id
     * @param {Sessions} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<SessionsView>}
     */
    putSessions: (deployment_id, body, query) => send("PUT", `/deployments/${p(deployment_id)}/sessions`, { query, body }),

    /**
     * Start a stopped deployment.
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<DeploymentView>}
     */
    startDeployment: (deployment_id) => send("POST", `/deployments/${p(deployment_id)}/start`, {}),

    /**
     * Stop a deployment's broker. Sessions and configuration are kept.
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<DeploymentView>}
     */
    stopDeployment: (deployment_id) => send("POST", `/deployments/${p(deployment_id)}/stop`, {}),

    /**
     * The deployment's TLS configuration: the custom certificate, or Skyport's default.
     * @param {string} deployment_id - Deployment id
     * @returns {Promise<TlsView>}
     */
    getTls: (deployment_id) => send("GET", `/deployments/${p(deployment_id)}/tls`, {}),

    /**
     * Upload a custom certificate (replacing any previous one). It is checked first: PEM,
     * X.509 v3, valid now, key matching the leaf, unencrypted key, complete chain (a leaf
     * not self-signed must be followed by its issuer; the last certificate may be issued
     * by a root clients trust), and a client CA for two-way TLS. Each failure is a 422 with
     * its own code (`tls_not_pem`, `tls_cert_not_v3`, `tls_cert_expired`,
     * `tls_cert_not_yet_valid`, `tls_key_mismatch`, `tls_key_encrypted`,
     * `tls_key_unsupported`, `tls_chain_incomplete`, `tls_ca_required`,
     * `tls_ca_not_allowed`) and leaves the configuration unchanged.
     * @param {string} deployment_id - Deployment id
     * @param {PutTls} body
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<TlsView>}
     */
    putTls: (deployment_id, body, query) => send("PUT", `/deployments/${p(deployment_id)}/tls`, { query, body }),

    /**
     * Go back to the certificate issued by Skyport's CA (one-way TLS). Idempotent.
     * @param {string} deployment_id - Deployment id
     * @param {{wait?: boolean}} [query]
     *   - `wait`: Wait for the running broker to apply the change (default true, up to the control plane's apply timeout, 5 s by default); `false` answers at once.
     * @returns {Promise<Delivery|null>}
     */
    deleteTls: (deployment_id, query) => send("DELETE", `/deployments/${p(deployment_id)}/tls`, { query }),

    /**
     * The process is up and serving HTTP.
     * @returns {Promise<Health>}
     */
    healthz: () => send("GET", `/healthz`, {}),

    /**
     * List projects: all of them for the admin, its own for a project key, their own for a
     * signed-in person.
     * @param {{limit?: number, cursor?: string}} [query]
     *   - `limit`: Items per page, 1 to 100 (default 20).
     *   - `cursor`: Opaque cursor from a previous page's `next_cursor`.
     * @returns {Promise<Paged_ProjectView>}
     */
    listProjects: (query) => send("GET", `/projects`, { query }),

    /**
     * Create a project (admin token only).
     * @param {CreateProject} body
     * @returns {Promise<ProjectView>}
     */
    createProject: (body) => send("POST", `/projects`, { body }),

    /**
     * Get one project.
     * @param {string} project_id - Project id
     * @returns {Promise<ProjectView>}
     */
    getProject: (project_id) => send("GET", `/projects/${p(project_id)}`, {}),

    /**
     * List a project's alert channels (any role).
     * @param {string} project_id - Project id
     * @returns {Promise<AlertChannelList>}
     */
    listChannels: (project_id) => send("GET", `/projects/${p(project_id)}/alert-channels`, {}),

    /**
     * Create an alert channel (owners and developers). A webhook's signing secret is in
     * the answer, and only there.
     * @param {string} project_id - Project id
     * @param {CreateAlertChannel} body
     * @returns {Promise<CreatedAlertChannel>}
     */
    createChannel: (project_id, body) => send("POST", `/projects/${p(project_id)}/alert-channels`, { body }),

    /**
     * One alert channel (any role).
     * @param {string} project_id - Project id
     * @param {string} channel_id - Alert channel id
     * @returns {Promise<AlertChannelView>}
     */
    getChannel: (project_id, channel_id) => send("GET", `/projects/${p(project_id)}/alert-channels/${p(channel_id)}`, {}),

    /**
     * Delete an alert channel (owners and developers); 409 `channel_in_use` while a rule
     * names it.
     * @param {string} project_id - Project id
     * @param {string} channel_id - Alert channel id
     * @returns {Promise<null>}
     */
    deleteChannel: (project_id, channel_id) => send("DELETE", `/projects/${p(project_id)}/alert-channels/${p(channel_id)}`, {}),

    /**
     * Send a test notification to the channel now (owners and developers): 204 once the
     * webhook answered 2xx or the SMTP server took the mail, else 502 `delivery_failed`
     * with the reason.
     * @param {string} project_id - Project id
     * @param {string} channel_id - Alert channel id
     * @returns {Promise<null>}
     */
    testChannel: (project_id, channel_id) => send("POST", `/projects/${p(project_id)}/alert-channels/${p(channel_id)}/test`, {}),

    /**
     * List a project's alert rules with their active alerts (any role).
     * @param {string} project_id - Project id
     * @returns {Promise<AlertRuleList>}
     */
    listRules: (project_id) => send("GET", `/projects/${p(project_id)}/alert-rules`, {}),

    /**
     * Create an alert rule (owners and developers). The leader evaluates it from its next
     * pass on.
     * @param {string} project_id - Project id
     * @param {AlertRuleSpec} body
     * @returns {Promise<AlertRuleView>}
     */
    createRule: (project_id, body) => send("POST", `/projects/${p(project_id)}/alert-rules`, { body }),

    /**
     * One alert rule with its active alerts (any role).
     * @param {string} project_id - Project id
     * @param {string} rule_id - Alert rule id
     * @returns {Promise<AlertRuleView>}
     */
    getRule: (project_id, rule_id) => send("GET", `/projects/${p(project_id)}/alert-rules/${p(rule_id)}`, {}),

    /**
     * Replace an alert rule (owners and developers). Its active alerts stay and are
     * evaluated against the new condition; disabling it drops them.
     * @param {string} project_id - Project id
     * @param {string} rule_id - Alert rule id
     * @param {AlertRuleSpec} body
     * @returns {Promise<AlertRuleView>}
     */
    putRule: (project_id, rule_id, body) => send("PUT", `/projects/${p(project_id)}/alert-rules/${p(rule_id)}`, { body }),

    /**
     * Delete an alert rule and its active alerts, without notifying (owners and
     * developers).
     * @param {string} project_id - Project id
     * @param {string} rule_id - Alert rule id
     * @returns {Promise<null>}
     */
    deleteRule: (project_id, rule_id) => send("DELETE", `/projects/${p(project_id)}/alert-rules/${p(rule_id)}`, {}),

    /**
     * List a project's API keys, without secrets (owners).
     * @param {string} project_id - Project id
     * @returns {Promise<ApiKeyList>}
     */
    listApiKeys: (project_id) => send("GET", `/projects/${p(project_id)}/api-keys`, {}),

    /**
     * Create an API key for a project (admin token, or an owner of the project: key or member).
     * @param {string} project_id - Project id
     * @param {CreateApiKey} body
     * @returns {Promise<CreatedApiKey>}
     */
    createApiKey: (project_id, body) => send("POST", `/projects/${p(project_id)}/api-keys`, { body }),

    /**
     * Revoke an API key; it stops working at once (owners).
     * @param {string} project_id - Project id
     * @param {string} key_id - API key id
     * @returns {Promise<null>}
     */
    deleteApiKey: (project_id, key_id) => send("DELETE", `/projects/${p(project_id)}/api-keys/${p(key_id)}`, {}),

    /**
     * List a project's members (any member).
     * @param {string} project_id - Project id
     * @returns {Promise<MemberList>}
     */
    listMembers: (project_id) => send("GET", `/projects/${p(project_id)}/members`, {}),

    /**
     * Add a user to a project with a role (owner). An unknown address is 422
     * `unknown_user`; a member already there is 409 `already_member`.
     * @param {string} project_id - Project id
     * @param {AddMember} body
     * @returns {Promise<MemberView>}
     */
    addMember: (project_id, body) => send("POST", `/projects/${p(project_id)}/members`, { body }),

    /**
     * Change a member's role (owner). The only owner cannot step down (409 `last_owner`).
     * @param {string} project_id - Project id
     * @param {string} user_id - User id
     * @param {SetRole} body
     * @returns {Promise<MemberView>}
     */
    setMemberRole: (project_id, user_id, body) => send("PUT", `/projects/${p(project_id)}/members/${p(user_id)}`, { body }),

    /**
     * Remove a member (owner). The only owner cannot leave (409 `last_owner`).
     * @param {string} project_id - Project id
     * @param {string} user_id - User id
     * @returns {Promise<null>}
     */
    removeMember: (project_id, user_id) => send("DELETE", `/projects/${p(project_id)}/members/${p(user_id)}`, {}),

    /**
     * The project's deployment quota (any member or key of the project, or the admin).
     * @param {string} project_id - Project id
     * @returns {Promise<QuotaView>}
     */
    getQuota: (project_id) => send("GET", `/projects/${p(project_id)}/quota`, {}),

    /**
     * Set the project's deployment quota (admin token only). Lowering it below the
     * project's current count refuses new deployments and deletes none.
     * @param {string} project_id - Project id
     * @param {SetQuota} body
     * @returns {Promise<QuotaView>}
     */
    putQuota: (project_id, body) => send("PUT", `/projects/${p(project_id)}/quota`, { body }),

    /**
     * A project's usage in a month: session-minutes, peak sessions, peak TPS, messages and
     * traffic per deployment and in total (admin token, or the project's own key). A month
     * not written `YYYY-MM`, or not started yet, is 400 `invalid_month`.
     * @param {string} project_id - Project id
     * @param {{month?: string}} [query]
     *   - `month`: The month, `YYYY-MM` (UTC); defaults to the current month.
     * @returns {Promise<ProjectUsage>}
     */
    projectUsage: (project_id, query) => send("GET", `/projects/${p(project_id)}/usage`, { query }),

    /**
     * The database is reachable and a leader is known (which runs the reconciler): 200,
     * else 503 with what is missing.
     * @returns {Promise<Readiness>}
     */
    readyz: () => send("GET", `/readyz`, {}),

    /**
     * The current session (cookie), with its CSRF token.
     * @returns {Promise<SessionView>}
     */
    getSession: () => send("GET", `/session`, {}),

    /**
     * Sign in to the web console. Sets the session cookie; the body carries the CSRF token.
     * A wrong address or password is 401 `invalid_credentials`; the 10th wrong password in
     * a row, and every attempt for a while after, is 429 `too_many_attempts`.
     * @param {SignIn} body
     * @returns {Promise<SessionView>}
     */
    signIn: (body) => send("POST", `/session`, { body }),

    /**
     * Sign out: the session ends on the server (the cookie stops working everywhere) and
     * the cookie is cleared. Needs the CSRF token.
     * @returns {Promise<null>}
     */
    signOut: () => send("DELETE", `/session`, {}),

    /**
     * List console users (admin token only).
     * @param {{limit?: number, cursor?: string}} [query]
     *   - `limit`: Items per page, 1 to 100 (default 20).
     *   - `cursor`: Opaque cursor from a previous page's `next_cursor`.
     * @returns {Promise<Paged_UserView>}
     */
    listUsers: (query) => send("GET", `/users`, { query }),

    /**
     * Create a console user (admin token only). Bad addresses are 422 `invalid_email`,
     * short passwords 422 `weak_password`, a taken address 409 `email_taken`.
     * @param {CreateUser} body
     * @returns {Promise<UserView>}
     */
    createUser: (body) => send("POST", `/users`, { body }),

  };
}
