"""How jobs look in a chat: status lines, progress bars, captions and result buttons."""

from __future__ import annotations

from engine.jobs import GenerationBase, Upscale
from handlers.port import Button
from locales import Translator
from storage.records import JobRecord

CAPTION_LIMIT = 1024  # Telegram's caption limit is the tightest of our platforms


def progress_bar(fraction: float, width: int = 12) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "▰" * filled + "▱" * (width - filled)


def status_queued(t: Translator, position: int) -> str:
    return t("status-queued", position=position)


def status_running(t: Translator, *, step: int, total: int, eta_s: float | None) -> str:
    if total <= 0:
        return t("status-starting")
    fraction = step / total
    text = t("status-running", bar=progress_bar(fraction), percent=int(fraction * 100), step=step, total=total)
    if eta_s is not None and 0 < step < total:
        text += " " + t("status-eta", seconds=max(1, int(round(eta_s))))
    return text


def cut(text: str, limit: int) -> str:
    """Cut at a word boundary and mark it, never in the middle of a character."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit * 0.6:
        head = head[:space]
    return head.rstrip() + "…"


def caption_for(t: Translator, job: JobRecord, seeds: list[int | None]) -> str:
    spec = job.spec
    mention = job.chat.requester_mention
    tail_parts: list[str] = []
    if isinstance(spec, GenerationBase):
        seed_text = ", ".join(str(s) for s in seeds if s is not None) or str(spec.seed)
        tail_parts.append(
            t("caption-params", seed=seed_text, steps=spec.steps, cfg=f"{spec.cfg:g}",
              width=spec.width, height=spec.height, model=spec.model or job.backend)
        )
        head = spec.prompt
    else:
        head = t(f"caption-{spec.kind}")
    for note in job.notes:
        tail_parts.append(t(note["key"], **note.get("args", {})))
    if mention:
        tail_parts.append(mention)
    tail = "\n".join(tail_parts)
    room = CAPTION_LIMIT - len(tail) - 2
    return f"{cut(head, max(room, 40))}\n{tail}" if tail else cut(head, CAPTION_LIMIT)


def result_buttons(t: Translator, job: JobRecord, count: int) -> list[list[Button]]:
    """U1..Un (upscale), V1..Vn (vary), reroll: Midjourney's grid habit. An upscaled picture
    may be upscaled again or varied."""
    if count == 0:
        return []
    if isinstance(job.spec, Upscale):
        return [[Button("U1", f"u:{job.id}:0"), Button("V1", f"v:{job.id}:0")]]
    if not isinstance(job.spec, GenerationBase):
        return []
    rows = [
        [Button(f"U{k + 1}", f"u:{job.id}:{k}") for k in range(count)],
        [Button(f"V{k + 1}", f"v:{job.id}:{k}") for k in range(count)],
        [Button(t("button-reroll"), f"r:{job.id}")],
    ]
    return rows


def cancel_buttons(t: Translator, job_id: str) -> list[list[Button]]:
    return [[Button(t("button-cancel"), f"x:{job_id}")]]
