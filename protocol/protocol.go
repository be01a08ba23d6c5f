// Package protocol is the uWSGI Emperor protocol, shared by the Emperor and
// the vassal so the two sides can never disagree on a byte.
//
// The control channel is a SOCK_STREAM socketpair carrying single bytes with
// no framing. The optional config channel is a second socketpair carrying
// config frames (see Frame). The vassal learns the fd numbers from the
// environment variables EnvFD and EnvConfigFD.
package protocol

import "fmt"

// A Byte is one control message on the emperor channel. Its meaning depends
// on the direction; see the constants below.
type Byte byte

// Bytes the Emperor sends to a vassal.
const (
	// Stop asks the vassal to stop now (brutally).
	Stop Byte = 0
	// Reload asks the vassal to reload gracefully (config changed, SIGHUP).
	Reload Byte = 1
	// GracefulStop asks the vassal to stop gracefully; the Emperor sends it
	// instead of Stop when emperor-graceful-shutdown is set.
	GracefulStop Byte = 2
)

// Bytes a vassal sends to the Emperor.
const (
	// Spawned: the vassal master is initialised and about to start workers.
	Spawned Byte = 1
	// ConfigRequest: send me my config again (only with a config channel).
	ConfigRequest Byte = 2
	// Accepting: a worker is ready to accept requests.
	Accepting Byte = 5
	// Loyal: the application has proven itself (uWSGI: a worker finished
	// its first request).
	Loyal Byte = 17
	// Voluntary: the vassal stops of its own will (idle, die-on-idle) and
	// asks not to be restarted.
	Voluntary Byte = 22
	// Heartbeat: the vassal is alive.
	Heartbeat Byte = 26
	// Reinforcements: broodlord SOS, send more zergs.
	Reinforcements Byte = 30
)

// ExileCode is the exit status with which a vassal asks not to be respawned
// (uWSGI's UWSGI_EXILE_CODE).
const ExileCode = 26

// Environment variable names of the protocol.
const (
	// EnvFD holds the decimal fd number of the vassal's control channel end.
	EnvFD = "UWSGI_EMPEROR_FD"
	// EnvConfigFD holds the decimal fd number of the vassal's config channel
	// end. It is set only when the monitor supplied config text.
	EnvConfigFD = "UWSGI_EMPEROR_FD_CONFIG"
	// EnvReloads is uWSGI's reload counter; the Emperor removes it so every
	// vassal starts fresh.
	EnvReloads = "UWSGI_RELOADS"
	// EnvBroodlordNum numbers zerg instances.
	EnvBroodlordNum = "UWSGI_BROODLORD_NUM"
	// EnvVassalPrefix: UWSGI_VASSAL_xxx in the Emperor's environment becomes
	// UWSGI_xxx in every vassal's.
	EnvVassalPrefix = "UWSGI_VASSAL_"
	// EnvNotifySocket is systemd's; vassals never talk to systemd directly.
	EnvNotifySocket = "NOTIFY_SOCKET"
)

// EmperorScheme prefixes the config name in a vassal's argv when its config
// text arrives over the config channel: "emperor://app.ini".
const EmperorScheme = "emperor://"

// FromVassal names a byte received from a vassal, for logs and stats.
func (b Byte) FromVassal() string {
	switch b {
	case Spawned:
		return "spawned"
	case ConfigRequest:
		return "config-request"
	case Accepting:
		return "accepting"
	case Loyal:
		return "loyal"
	case Voluntary:
		return "voluntary-stop"
	case Heartbeat:
		return "heartbeat"
	case Reinforcements:
		return "reinforcements"
	}
	return fmt.Sprintf("unknown(%d)", byte(b))
}

// FromEmperor names a byte received from the Emperor, for logs.
func (b Byte) FromEmperor() string {
	switch b {
	case Stop:
		return "stop"
	case Reload:
		return "reload"
	case GracefulStop:
		return "graceful-stop"
	}
	return fmt.Sprintf("unknown(%d)", byte(b))
}
