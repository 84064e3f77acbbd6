#!/usr/bin/python3
"""Asks an X window to close the way a window manager's close button does: a WM_DELETE_WINDOW
client message to every top-level window with the given title that takes part in that protocol.
The app then decides what closing means (Wrenchline hides to the tray). Exits 1 if no such
window exists.

    close-window.py TITLE
"""
import sys

from Xlib import X, display, error, protocol


def windows(window):
    yield window
    for child in window.query_tree().children:
        yield from windows(child)


def main(title):
    d = display.Display()
    protocols = d.intern_atom("WM_PROTOCOLS")
    delete = d.intern_atom("WM_DELETE_WINDOW")
    asked = 0
    for window in windows(d.screen().root):
        try:
            if window.get_wm_name() != title or delete not in (window.get_wm_protocols() or []):
                continue
        except error.XError:
            continue
        message = protocol.event.ClientMessage(
            window=window, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        window.send_event(message, event_mask=X.NoEventMask)
        asked += 1
    d.flush()
    return 0 if asked else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
