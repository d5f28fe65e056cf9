"""The Textual app: a client of runs through their control sockets and folders; it never trains itself."""
