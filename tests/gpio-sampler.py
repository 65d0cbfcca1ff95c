#!/usr/bin/env python3
"""The GPIO test's hands and eyes in the VM guest (tests/gpio.rs): samples
the status LED (line 0) and tally (line 1) of the gpio-sim chip every 10 ms
and appends "uptime status tally" lines to JOB/gpio.samples (flushed every
0.2 s: the job directory is a 9p share, slow to write); a file JOB/press
holding seconds holds the button (line 2, wired active low) down that long,
as a finger on a button to ground does, then JOB/released appears.

    gpio-sampler.py JOB
"""

import glob
import os
import sys
import time

job = sys.argv[1]
chip = glob.glob("/sys/devices/platform/gpio-sim.*/gpiochip*")[0]


def level(line):
    with open(f"{chip}/sim_gpio{line}/value") as f:
        return f.read().strip()


def pull(line, direction):
    with open(f"{chip}/sim_gpio{line}/pull", "w") as f:
        f.write(direction)


press = os.path.join(job, "press")
pending = []
flushed = time.monotonic()
release_at = None
while True:
    now = time.monotonic()
    with open("/proc/uptime") as f:
        uptime = f.read().split()[0]
    pending.append(f"{uptime} {level(0)} {level(1)}\n")
    if release_at is not None and now >= release_at:
        pull(2, "pull-up")
        release_at = None
        open(os.path.join(job, "released"), "w").close()
    if now - flushed >= 0.2:
        with open(os.path.join(job, "gpio.samples"), "a") as f:
            f.writelines(pending)
        pending.clear()
        flushed = now
        if release_at is None and os.path.exists(press):
            with open(press) as f:
                hold = float(f.read())
            os.remove(press)
            pull(2, "pull-down")
            release_at = now + hold
    time.sleep(0.01)
