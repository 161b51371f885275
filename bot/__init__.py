"""The Slack bot: slash commands that answer from Elasticsearch and the alert messages' buttons.

Layout (after Netflix Dispatch's Slack plugin): `bolt` builds the one app, `server` serves it over HTTP,
`socket_mode` over a WebSocket; `commands` and `interactive` hold thin listeners, `answers` the work they
hand off, `messages` and `modals` the Block Kit, `fields` reusable inputs, `middleware` the subject of an
action, `enums` every id, `parsing` the command grammar.
"""
