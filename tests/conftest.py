"""Root test configuration: shared fixtures are registered here as plugins."""

pytest_plugins = ["tests.support.mosquitto", "tests.support.influxd"]
