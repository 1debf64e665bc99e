"""GPU workers behind the bot, through Redis Streams.

With ``IMAGEBOT_QUEUE_URL`` set, the bot's GPU backends are ``RemoteBackend`` objects: the
bot's scheduler still decides the fair order between users, and a job that gets a lane
slot is handed to one ``python -m bot worker`` process through that worker's inbox stream.
The worker streams progress and results back; the bot stays the only writer of SQLite.

    bot: scheduler (fair, capacity = live worker slots) -> RemoteBackend.run(work)
           -> Fleet.acquire: a live worker that can run it, model loaded preferred
           -> MULTI: job hash (attempt, worker) + inputs + XADD <worker inbox>
    worker: XREADGROUP <its inbox> -> the real backend (local, tools, a vendor)
           -> XADD <job events>: progress, notices, checkpoints, the result -> XACK
    bot: XREAD <job events>, only the current attempt's -> Progress / Notice / Finished

- ``protocol``: key names, message shapes and size bounds, in one place.
- ``fleet``: the bot's view of the workers (heartbeats, liveness, slots, /stats).
- ``remote``: ``RemoteBackend``, the Backend protocol over the fleet.
- ``worker``: the worker process's loop.
- ``connect``: one Redis client per process, with the URL never logged in clear.
"""
