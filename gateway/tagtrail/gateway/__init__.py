"""The gateway: MQTT consumer, positions store, InfluxDB writer and the HTTP API."""
