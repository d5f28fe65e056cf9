"""sftui: asynchronous APPO training you can watch and steer from a terminal."""
