"""The user's own programs, driven for them: ssh sessions and tunnels, PuTTY saved sessions,
VS Code, the clipboard, the shells' completion files and the man page."""
