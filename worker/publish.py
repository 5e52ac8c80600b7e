"""Enqueue a fetch in one Redis round trip: the webhook's hot path.

``Celery.send_task`` costs more CPU than the rest of a webhook together (kombu
builds a new redis client per publish, plus its publish machinery; see
bench/README.md). This module builds the task message with Celery's own
protocol-2 builder (``app.amqp.as_task_v2``), wraps it in the envelope kombu's
Redis transport puts on the queue list (serialized once per task name, then
filled in per message), and pushes it from a Lua script that also remembers
the callback and takes the enqueue claim: one EVALSHA.

The envelope is kombu's (``virtual.Channel.basic_publish``); the test
``test_fast_publish_matches_kombus_envelope`` compares the two field by field,
and every end-to-end test has a real Celery worker consume these messages.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from json.encoder import encode_basestring_ascii

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import keys, status

# KEYS: webhook state key (or ""), queued marker, queue list.
# ARGV: webhook state value, state TTL, marker TTL, message.
CLAIM_AND_PUSH = """
if KEYS[1] ~= "" then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  redis.call('LPUSH', KEYS[3], ARGV[4])
  return 1
end
return 0
"""


# What differs between two messages for the same task name; the rest of
# kombu's envelope is serialized once per process (MessageTemplate).
_HOLE = re.compile(r'"@@(\w+)@@"')


class MessageTemplate:
    """kombu's serialized envelope for one task name, with holes for what varies.

    Built from Celery's own ``as_task_v2`` once per process (its ``origin``
    names the process), then filled in per message: the ids, the arguments
    and their repr: cheaper than rebuilding the whole envelope per message.
    """

    def __init__(self, celery: Celery, queue: str, name: str):
        hole = "@@{}@@".format
        task = celery.amqp.as_task_v2(
            hole("task_id"),
            name,
            [],
            {},
            reply_to=celery.thread_oid,
            ignore_result=None,
            argsrepr=hole("argsrepr"),
            kwargsrepr="{}",
        )
        self.embed = task.body[2]  # callbacks, errbacks, chain, chord: all None
        properties = {
            **task.properties,
            "argsrepr": hole("argsrepr"),
            "kwargsrepr": "{}",
            "delivery_mode": 2,
            # The default exchange: the routing key names the queue list.
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": hole("delivery_tag"),
        }
        envelope = {
            "body": hole("body"),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": task.headers,
            "properties": properties,
        }
        # [text, hole name, text, hole name, ..., text]
        self.parts = _HOLE.split(json.dumps(envelope))

    def render(self, args: list) -> str:
        """The message kombu would LPUSH for ``send_task(name, args)``."""
        body = json.dumps((args, {}, self.embed)).encode()
        values = {
            "task_id": str(uuid.uuid4()),
            "argsrepr": repr(args),
            "body": base64.b64encode(body).decode(),
            "delivery_tag": str(uuid.uuid4()),
        }
        parts = self.parts[:]
        for index in range(1, len(parts), 2):
            # What json.dumps does for a str, without its per-call overhead.
            parts[index] = encode_basestring_ascii(values[parts[index]])
        return "".join(parts)


class FastPublisher:
    """Publishes tasks to the default queue, a fetch with a single Redis command.

    It holds one connection of its own to ``r``'s server: a single-connection
    client skips a pool's checkout and release on the webhook's hot path. The
    checkout is also what notices a socket Redis closed (a restart, an idle
    timeout), so the connection gets one immediate retry instead: redis-py
    reconnects and resends (a resent claim finds itself taken: no second task).
    A forked child reconnects and rebuilds its templates on first use, so it
    never shares its parent's socket and names itself as the origin.
    """

    def __init__(self, celery: Celery, r: redis.Redis):
        self.celery = celery
        self.queue = celery.conf.task_default_queue
        self._pool_kwargs = {**r.connection_pool.connection_kwargs, "retry": Retry(NoBackoff(), 1)}
        self._connection_class = r.connection_pool.connection_class
        self._pid = os.getpid()
        self._script = None  # connected on first use: an app starts while Redis is down
        self.templates: dict[str, MessageTemplate] = {}

    def _script_of_this_process(self):
        """The Lua script on this process's own connection, made on first use after a fork too."""
        if self._pid != os.getpid():
            self._pid, self._script, self.templates = os.getpid(), None, {}
        if self._script is None:
            pool = redis.ConnectionPool(connection_class=self._connection_class, **self._pool_kwargs)
            client = redis.Redis(connection_pool=pool, single_connection_client=True)
            self._script = client.register_script(CLAIM_AND_PUSH)
        return self._script

    def message(self, name: str, args: list) -> str:
        """The serialized message kombu would LPUSH for ``send_task(name, args)``."""
        template = self.templates.get(name)
        if template is None:
            template = self.templates[name] = MessageTemplate(self.celery, self.queue, name)
        return template.render(args)

    def push(self, name: str, args: list) -> None:
        """Queue a task with no claim (a child leg's record: cheap and idempotent)."""
        script = self._script_of_this_process()
        script.registered_client.lpush(self.queue, self.message(name, args))

    def claim_and_push(self, sid: str, fmt: str, name: str, args: list, webhook: tuple | None) -> bool:
        """Remember the callback, claim the enqueue, push the task: True when pushed."""
        script = self._script_of_this_process()
        state_key, state_value = "", ""
        if webhook:
            state_key, state_value = keys.webhook(sid), status.webhook_value(*webhook)
        script_keys = [state_key, keys.queued(sid, fmt), self.queue]
        argv = [state_value, keys.STATE_TTL_SECONDS, keys.QUEUED_TTL_SECONDS, self.message(name, args)]
        return bool(script(keys=script_keys, args=argv))
