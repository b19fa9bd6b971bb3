"""Peer: python-socketio on uvicorn. A room per channel; one NATS subscription per subject; each
NATS message is emitted once to the room (the payload as a JSON string, not re-parsed)."""

from __future__ import annotations

import os

import nats
import socketio
import uvicorn

from tickmesh.contracts.channels import parse_channel, subject_for

from .naive import port, subscribe_once


def create_app() -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
    state: dict = {"nc": None, "subs": {}}

    async def startup() -> None:
        state["nc"] = await nats.connect(
            servers=[os.environ.get("NATS_URL", "nats://127.0.0.1:4222")],
            name="bench-socketio-peer",
            max_reconnect_attempts=-1,
        )

    async def shutdown() -> None:
        if state["nc"] is not None:
            await state["nc"].close()

    @sio.on("sub")
    async def sub(sid, channel):
        subject = subject_for(parse_channel(channel))
        await sio.enter_room(sid, channel)

        async def on_msg(msg, room=channel):
            await sio.emit("msg", msg.data.decode(), room=room)

        await subscribe_once(state["nc"], state["subs"], subject, on_msg)
        return "ok"

    return socketio.ASGIApp(sio, on_startup=startup, on_shutdown=shutdown)


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=port(), loop="uvloop", log_level="warning", access_log=False)
