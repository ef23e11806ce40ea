"""Files and programs of the user's desktop besides ssh: PuTTY's saved sessions, the shells'
completion files and the man page where they look, the clipboard."""
