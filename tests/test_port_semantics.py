"""What the handlers tell every adapter through the port: what happened (Outcome), which
replies are for the sender alone, which message is the status (and where it moved to), and
the space above a chat (a Discord guild) whose admins set defaults for all its channels."""

from __future__ import annotations

from dataclasses import replace

from handlers.port import ChatRef, MessageRef
from storage.records import JobState
from tests.chat_recorder import GROUP, RecordingMessenger, demo_settings, person, say, started_runtime


class ReplacingMessenger(RecordingMessenger):
    """A platform that must replace the status message on its first edit (as Discord does when
    it cannot edit a message into another kind)."""

    def __init__(self) -> None:
        super().__init__()
        self.replaced: dict[str, str] = {}

    async def edit_status(self, status, text, *, preview=None, buttons=None, final=False):  # type: ignore[no-untyped-def]
        await super().edit_status(status, text, preview=preview, buttons=buttons, final=final)
        if status.message_id in self.replaced.values():
            return None
        new = MessageRef(status.chat, f"new-{status.message_id}")
        self.replaced[status.message_id] = new.message_id
        return new


async def test_the_outcome_says_what_happened(bot):
    runtime, chat = bot
    queued = await runtime.app.handle_message(say("/imagine a fox --steps 2 --size 64x64"), chat)
    refused = await runtime.app.handle_message(say("/imagine a fox --steps 999"), chat)
    chatter = await runtime.app.handle_message(say("hello all", chat=GROUP), chat)
    assert queued.answered and queued.job_id and (await runtime.storage.job(queued.job_id)) is not None
    assert refused.answered and refused.job_id is None
    assert not chatter.answered and chatter.job_id is None
    await runtime.wait_idle()


async def test_refusals_and_account_answers_are_personal_the_status_is_not(bot):
    runtime, chat = bot
    for text in ("/imagine a fox --steps 999", "/balance", "/settings", "/help"):
        await runtime.app.handle_message(say(text, chat=GROUP), chat)
        assert chat.log[-1].personal, text
    await runtime.app.handle_message(say("/imagine a fox --steps 2 --size 64x64", chat=GROUP), chat)
    status = [s for s in chat.log if s.status][0]
    assert status.kind == "text" and not status.personal  # the whole chat follows a job
    await runtime.wait_idle()


async def test_when_the_status_is_replaced_later_edits_go_to_the_new_one(tmp_path, tiny_model_dir):
    chat = ReplacingMessenger()
    runtime = await started_runtime(demo_settings(tmp_path, tiny_model_dir), chat)
    try:
        outcome = await runtime.app.handle_message(say("/imagine a slow fox --steps 12 --size 128x128"), chat)
        await runtime.wait_idle()
        (first_status,) = [s.message_id for s in chat.log if s.status and s.kind == "text"]
        new_id = chat.replaced[first_status]
        edits = [s.message_id for s in chat.log if s.kind == "edit"]
        assert edits[0] == first_status and set(edits[1:]) == {new_id}  # never the old one again
        job = await runtime.storage.job(outcome.job_id)
        assert job.state is JobState.DONE and job.status_message_id == new_id  # kept for a restart
        assert [s.message_id for s in chat.of("delete")] == [new_id]  # the one users see made way
    finally:
        await runtime.stop()


GUILD = "guild-9"
CHANNEL_A = ChatRef(platform="console", chat_id="chan-a", is_private=False, space_id=GUILD)
CHANNEL_B = ChatRef(platform="console", chat_id="chan-b", is_private=False, space_id=GUILD)


async def test_server_admins_set_defaults_for_every_channel_and_a_channel_can_override(bot):
    runtime, chat = bot
    member = say("/settings server ar 2:3", user=person("bob"), chat=CHANNEL_A)
    await runtime.app.handle_message(member, chat)
    assert "manage this server" in chat.log[-1].text
    admin = replace(say("/settings server ar 2:3", user=person("ann"), chat=CHANNEL_A), sender_is_space_admin=True)
    await runtime.app.handle_message(admin, chat)
    await runtime.app.handle_message(replace(say("/settings server pool 5", user=person("ann"), chat=CHANNEL_A),
                                             sender_is_space_admin=True), chat)
    await runtime.app.handle_message(replace(say("/settings chat ar 3:2", user=person("ann"), chat=CHANNEL_B),
                                             sender_is_chat_admin=True), chat)
    await runtime.app.handle_message(say("/imagine tall --steps 2", user=person("bob"), chat=CHANNEL_A), chat)
    await runtime.app.handle_message(say("/imagine wide --steps 2", user=person("bob"), chat=CHANNEL_B), chat)
    await runtime.wait_idle()
    jobs = {j.spec.prompt: j for j in await runtime.storage.recent_jobs()}
    assert jobs["tall"].spec.height > jobs["tall"].spec.width  # the server's default
    assert jobs["wide"].spec.width > jobs["wide"].spec.height  # the channel's own wins
    bob = await runtime.storage.user("console", "bob")
    assert (await runtime.storage.balance(bob.id)).free_left_today == 10  # the server's pool paid
