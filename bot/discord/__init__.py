"""The Discord adapter (discord.py 2): adapter.py (events -> Incoming/Press), messenger.py
(the Messenger port), commands.py (slash commands and menus from the flag table), runner.py."""
