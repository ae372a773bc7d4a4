package main

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/dgraph-io/ristretto/v2"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/pprof/profile"
	_ "github.com/google/uuid"
	_ "github.com/grafana/grafana-foundation-sdk/go/dashboard"
	_ "github.com/grafana/grafana-foundation-sdk/go/timeseries"
	_ "github.com/grafana/pyroscope-go"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/prometheus/client_golang/prometheus/collectors"
	_ "github.com/prometheus/common/expfmt"
	_ "github.com/prometheus/prometheus/promql/parser"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/sony/gobreaker/v2"
	_ "github.com/testcontainers/testcontainers-go/modules/postgres"
	_ "github.com/testcontainers/testcontainers-go/modules/redis"
	_ "github.com/vbauerster/mpb/v8"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/perf/benchmath"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
	_ "go.uber.org/goleak"
)

func main() {}
