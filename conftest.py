# eventlet must patch before anything imports socket/threading (nameko requires it).
import eventlet

eventlet.monkey_patch()

import os  # noqa: E402

# Tests run with the development secrets committed to the repository (see kc_common.settings).
os.environ.setdefault("KC_ENV", "development")

pytest_plugins = ["kc_common.testing"]
