#!/bin/sh
# Runs once, at InfluxDB 2's first start (docker-entrypoint-initdb.d): map the InfluxQL
# database "tagtrail" (retention policy "autogen") to the bucket "tagtrail/autogen", so the
# gateway's v1-style queries and the Grafana dashboards (InfluxQL) work unchanged.
set -eu
bucket_id=$(influx bucket list --name "tagtrail/autogen" --org tagtrail --hide-headers | cut -f1)
influx v1 dbrp create --db tagtrail --rp autogen --bucket-id "$bucket_id" --default --org tagtrail
