module github.com/sluicehq/sluice/services/gateway

go 1.26.8

require (
	github.com/sluicehq/sluice/pkg v0.0.0
	github.com/sluicehq/sluice/schemas v0.0.0
)

require github.com/goccy/go-json v0.12.0 // indirect

replace github.com/sluicehq/sluice/pkg => ../../pkg

replace github.com/sluicehq/sluice/schemas => ../../schemas
