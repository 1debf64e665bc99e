"""The durable core: jobs are written with their reservation, and the ledger never double-charges."""

import asyncio

import pytest

from engine.jobs import Txt2Img
from storage.records import ChatCoordinates, JobState, ResultRecord
from storage.store import QuotaExceeded, Storage, TooManyQueued

CHAT = ChatCoordinates(platform="console", chat_id="local", thread_id=None, is_private=True)


@pytest.fixture
async def storage(tmp_path):
    s = await Storage.open(tmp_path / "db.sqlite3", daily_free=5)
    yield s
    await s.close()


async def _job(storage, user, n=2, cost=1):
    return await storage.create_job(user_id=user.id, spec=Txt2Img(prompt="a fox", n=n), backend="local",
                                    chat=CHAT, language="en", cost_per_image=cost)


async def test_a_new_job_is_queued_and_holds_its_quota(storage):
    user = await storage.user("console", "ann")
    job = await _job(storage, user, n=2)
    assert job.state is JobState.QUEUED
    balance = await storage.balance(user.id)
    assert (balance.free_left_today, balance.reserved) == (3, 2)


async def test_delivered_images_are_committed_once_and_the_rest_refunded(storage):
    user = await storage.user("console", "ann")
    job = await _job(storage, user, n=2)
    await storage.set_results(job.id, [ResultRecord("a" * 64 + ".png", 1), ResultRecord("", 2, "moderation")])
    await storage.mark_delivered(job.id, 2, ["m1"], "local", "console")
    await storage.mark_delivered(job.id, 2, ["m1"], "local", "console")  # a retried delivery
    assert await storage.refund(job.id) == 1
    assert await storage.refund(job.id) == 0  # idempotent
    await storage.set_state(job.id, JobState.DONE)
    balance = await storage.balance(user.id)
    assert (balance.free_left_today, balance.reserved) == (4, 0)
    entries = [(e["entry"], e["pool"], e["amount"]) for e in await storage.ledger_of_job(job.id)]
    assert entries == [("reserve", "free", -2), ("commit", "spent", 1), ("refund", "free", 1)]


async def test_a_failed_job_gets_everything_back(storage):
    user = await storage.user("console", "ann")
    job = await _job(storage, user, n=4)
    assert await storage.refund(job.id) == 4
    await storage.set_state(job.id, JobState.FAILED, error_key="error-internal")
    assert (await storage.balance(user.id)).free_left_today == 5


async def test_quota_uses_free_images_first_then_credits_and_refunds_credits_first(storage):
    user = await storage.user("console", "ann")
    await storage.grant(user.id, 3)
    job = await _job(storage, user, n=4, cost=2)  # 8 = 5 free + 3 credits
    balance = await storage.balance(user.id)
    assert (balance.free_left_today, balance.credits) == (0, 0)
    await storage.set_results(job.id, [ResultRecord("b" * 64 + ".png", 1)])
    await storage.mark_delivered(job.id, 1, [], "local", "console")
    assert await storage.refund(job.id) == 6
    balance = await storage.balance(user.id)
    assert (balance.free_left_today, balance.credits) == (3, 3)  # the one delivered image cost 2 free ones


async def test_a_job_the_user_cannot_pay_for_is_not_written(storage):
    user = await storage.user("console", "ann")
    with pytest.raises(QuotaExceeded):
        await _job(storage, user, n=3, cost=2)
    assert await storage.jobs_in_states(list(JobState)) == []
    assert (await storage.balance(user.id)).free_left_today == 5


async def test_per_user_cap_on_open_jobs(storage):
    user = await storage.user("console", "ann")
    for _ in range(2):
        await storage.create_job(user_id=user.id, spec=Txt2Img(prompt="x"), backend="local", chat=CHAT,
                                 language="en", cost_per_image=0, max_queued_per_user=2)
    with pytest.raises(TooManyQueued):
        await storage.create_job(user_id=user.id, spec=Txt2Img(prompt="x"), backend="local", chat=CHAT,
                                 language="en", cost_per_image=0, max_queued_per_user=2)


async def test_concurrent_reservations_never_overspend(storage):
    user = await storage.user("console", "ann")
    results = await asyncio.gather(*[_job(storage, user, n=2) for _ in range(5)], return_exceptions=True)
    accepted = [r for r in results if not isinstance(r, Exception)]
    assert len(accepted) == 2  # 5 free images: two jobs of two fit, a third does not
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, Exception))


async def test_jobs_survive_reopening_the_database(tmp_path):
    s1 = await Storage.open(tmp_path / "db.sqlite3", daily_free=5)
    user = await s1.user("telegram", "42", "Ann")
    job = await _job(s1, user)
    await s1.set_status_message(job.id, "777")
    await s1.set_checkpoint(job.id, {"task_id": "t-1"})
    await s1.close()
    s2 = await Storage.open(tmp_path / "db.sqlite3", daily_free=5)
    again = await s2.job(job.id)
    assert again.spec == job.spec and again.status_message_id == "777" and again.checkpoint == {"task_id": "t-1"}
    assert await s2.job_for_message("console", "local", "777") == again
    await s2.close()


async def test_settings_merge_and_remove(storage):
    user = await storage.user("console", "ann")
    assert await storage.update_user_settings(user.id, {"ar": "3:2", "n": 2}) == {"ar": "3:2", "n": 2}
    assert await storage.update_user_settings(user.id, {"n": None}) == {"ar": "3:2"}
    assert (await storage.user("console", "ann")).settings == {"ar": "3:2"}


async def test_a_group_pool_pays_first_and_gets_its_refunds(storage):
    ann = await storage.user("telegram", "1")
    pool = await storage.user("telegram#chat", "-100", "chat pool")
    first = await storage.create_job(user_id=ann.id, spec=Txt2Img(prompt="x", n=2), backend="local", chat=CHAT,
                                     language="en", cost_per_image=1, pool=(pool.id, 3))
    second = await storage.create_job(user_id=ann.id, spec=Txt2Img(prompt="x", n=2), backend="local", chat=CHAT,
                                      language="en", cost_per_image=1, pool=(pool.id, 3))
    assert (await storage.balance(pool.id, daily_free=3)).free_left_today == 1
    assert (await storage.balance(ann.id)).free_left_today == 3  # the pool could not cover the second job
    await storage.refund(first.id)
    assert (await storage.balance(pool.id, daily_free=3)).free_left_today == 3
    await storage.refund(second.id)
    assert (await storage.balance(ann.id)).free_left_today == 5


async def test_running_totals_agree_with_the_ledger_after_many_jobs(storage):
    ann = await storage.user("console", "ann")
    await storage.grant(ann.id, 7)
    for k in range(12):
        try:
            job = await storage.create_job(user_id=ann.id, spec=Txt2Img(prompt="x", n=1 + k % 3),
                                           backend="local", chat=CHAT, language="en", cost_per_image=1)
        except Exception:
            continue
        if k % 3 == 0:
            await storage.end(job.id, JobState.FAILED, error_key="error-internal")
        else:
            results = [ResultRecord("a" * 64 + ".png", 1)] + [ResultRecord("", 2, "withheld")] * (job.spec.n - 1)
            await storage.set_results(job.id, results)
            await storage.settle(job.id, ["m"])
    balance = await storage.balance(ann.id)
    entries = [e for e in await storage.ledger_of_user(ann.id, limit=1000)]
    credits = sum(e["amount"] for e in entries if e["entry"] in ("grant", "reserve", "refund") and
                  (e["entry"] == "grant" or "credit" in (e["idem_key"] or "")))
    free_used = -sum(e["amount"] for e in entries if e["entry"] in ("reserve", "refund") and
                     ":free" in (e["idem_key"] or ""))
    assert (balance.credits, balance.free_left_today, balance.reserved) == (credits, 5 - free_used, 0)


async def test_a_finished_job_never_moves_backwards(storage):
    ann = await storage.user("console", "ann")
    job = await storage.create_job(user_id=ann.id, spec=Txt2Img(prompt="x"), backend="local", chat=CHAT,
                                   language="en", cost_per_image=1)
    await storage.set_results(job.id, [ResultRecord("a" * 64 + ".png", 1)])
    await storage.settle(job.id, ["m1"])
    assert await storage.end(job.id, JobState.FAILED, error_key="error-internal") is None  # a late writer
    assert await storage.set_state(job.id, JobState.RUNNING) is False
    again = await storage.job(job.id)
    assert again.state is JobState.DONE and again.error_key is None
    assert [e["entry"] for e in await storage.ledger_of_job(job.id)] == ["reserve", "commit"]
