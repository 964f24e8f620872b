# eventlet must patch before anything imports socket/threading (nameko requires it).
import eventlet

eventlet.monkey_patch()

import os  # noqa: E402

# Tests run with the development secrets committed to the repository (see kc_common.settings).
os.environ.setdefault("KC_ENV", "development")
# Classic queues for the suite's many short-lived vhosts (kc_common.events.queue_type): a
# quorum queue is a Raft group each, too slow to declare by the hundred on a 2-core machine.
# Production, make run and the cluster test run quorum; test_topology declares both.
os.environ.setdefault("QUEUE_TYPE", "classic")

pytest_plugins = ["kc_common.testing"]
