module github.com/sluicehq/sluice/schemas

go 1.26.8

require (
	github.com/golang/snappy v0.0.1 // indirect
	github.com/linkedin/goavro/v2 v2.15.0 // indirect
)
