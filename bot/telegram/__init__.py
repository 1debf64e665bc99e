"""The Telegram platform: an aiogram 3 adapter of the Messenger port (see handlers/port.py)."""
