# eventlet must patch before anything imports socket/threading (nameko requires it).
import eventlet

eventlet.monkey_patch()

pytest_plugins = ["kc_common.testing"]
