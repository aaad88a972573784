"""thisdb_site.asgi.BoundedRequests, the front of the production web tier: whole bodies first
with a deadline, then a bounded number of requests inside the application."""

import asyncio

from thisdb_site.asgi import BoundedRequests

SCOPE = {"type": "http", "method": "POST", "path": "/v1/x/k", "headers": []}


def run(coroutine):
    return asyncio.run(coroutine)


class Recorder:
    """An application that notes what it got and how many ran at once."""

    def __init__(self, hold: float = 0.0, start_first: bool = False):
        self.bodies, self.running, self.most = [], 0, 0
        self.hold, self.start_first = hold, start_first

    async def __call__(self, scope, receive, send):
        self.running += 1
        self.most = max(self.most, self.running)
        message = await receive()
        self.bodies.append(message["body"])
        if self.start_first:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            self.running -= 1  # its work is done; the answer is being sent
            await asyncio.sleep(self.hold)
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await asyncio.sleep(self.hold)
        self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def chunks(*parts: bytes, then_wait: bool = False):
    """A receive() giving these body chunks, then (optionally) nothing ever again."""
    queue = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1 or then_wait}
        for i, p in enumerate(parts)
    ]

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def collector():
    sent = []

    async def send(message):
        sent.append(message)

    return sent, send


def front(app, **overrides):
    options = {"max_body": 100, "body_timeout": 0.3, "concurrency": 2, **overrides}
    return BoundedRequests(app, **options)


def test_the_body_arrives_whole_in_one_message():
    app = Recorder()
    sent, send = collector()
    run(front(app)(SCOPE, chunks(b"ab", b"cd", b"ef"), send))
    assert app.bodies == [b"abcdef"]
    assert sent[0]["status"] == 200


def test_a_body_that_does_not_arrive_in_time_is_408_and_never_reaches_the_application():
    app = Recorder()
    sent, send = collector()
    run(front(app)(SCOPE, chunks(b"ab", then_wait=True), send))
    assert app.bodies == []
    assert sent[0]["status"] == 408
    assert b"did not arrive in time" in sent[1]["body"]


def test_a_body_over_the_limit_is_passed_on_cut_for_the_application_to_refuse():
    app = Recorder()
    sent, send = collector()
    run(front(app, max_body=4)(SCOPE, chunks(b"abc", b"def", b"ghi"), send))
    assert app.bodies == [b"abcdef"]  # more than 4 bytes: enough to know it is too large


def test_a_client_that_leaves_during_its_body_is_not_served():
    app = Recorder()
    sent, send = collector()
    messages = [
        {"type": "http.request", "body": b"a", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0)

    run(front(app)(SCOPE, receive, send))
    assert app.bodies == [] and sent == []


def test_at_most_concurrency_requests_run_at_once():
    app = Recorder(hold=0.05)

    async def many():
        wrapped = front(app, concurrency=3)
        await asyncio.gather(*(wrapped(SCOPE, chunks(b"x"), collector()[1]) for _ in range(12)))

    run(many())
    assert app.most == 3
    assert len(app.bodies) == 12


def test_a_request_gives_its_turn_back_when_its_answer_starts():
    app = Recorder(hold=0.2, start_first=True)

    async def two():
        wrapped = front(app, concurrency=1)
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(wrapped(SCOPE, chunks(b"x"), collector()[1]) for _ in range(2)))
        return asyncio.get_running_loop().time() - started

    took = run(two())
    assert took < 0.35  # the second ran while the first's answer was still going out


def test_lifespan_is_answered():
    sent, send = collector()
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return messages.pop(0)

    run(front(Recorder())({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
