"""A streamed model reply's text on its run's event stream, as it is written.

Each `tokens` event names the step and the attempt it belongs to: a retry's text
starts over, and a reader tells the two apart by the attempt. Only the delivery that
holds the attempt publishes (tokens.lua checks its fence), so a worker that lost its
step to a redelivery cannot interleave its text with the new one's.
"""

from __future__ import annotations

from trimtab.queue import keys, scripts, wire
from trimtab.queue.intake import Delivery


async def publish_text(lua: scripts.Scripts, delivery: Delivery, text: str, now_ms: int) -> bool:
    """Append `text` to the run's events; False when the attempt is no longer this
    delivery's, or the run has expired (nothing is published)."""
    task = delivery.task
    reply = await lua.call(
        "tokens",
        [keys.run(task.namespace, task.run_id), keys.run_events(task.namespace, task.run_id)],
        [task.step, task.attempt, delivery.fence or "", text, now_ms],
    )
    return wire.Reply(reply[0]) is wire.Reply.OK
