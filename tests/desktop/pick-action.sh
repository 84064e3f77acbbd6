#!/bin/sh
# dunst's "dmenu" during the desktop tests: dunst writes one line per notification action
# ("#Accept (New request: 2016 Subaru Outback) [3,accept]") and invokes the line printed back.
# Prints the first line containing what the test wrote to $HOME/dunst-pick, as a person
# choosing it from the menu would.
want=$(cat "$HOME/dunst-pick" 2>/dev/null)
[ -n "$want" ] || exit 1
grep -m1 -F -- "$want"
