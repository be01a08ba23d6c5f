module github.com/emperor-dev/emperor

go 1.26.8

require (
	github.com/fsnotify/fsnotify v1.10.1
	golang.org/x/sys v0.49.0
	gopkg.in/yaml.v3 v3.0.1
)
