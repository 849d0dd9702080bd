package kms

// The connection states of a key store (docs/design.md, "The KMS custom
// key store", the state machine).
const (
	Disconnected  = "DISCONNECTED"
	Connecting    = "CONNECTING"
	Connected     = "CONNECTED"
	Failed        = "FAILED"
	Disconnecting = "DISCONNECTING"
)

// The ConnectionErrorCode values a CloudHSM key store can report.
const (
	CodeClusterNotFound    = "CLUSTER_NOT_FOUND"
	CodeInsufficientHSMs   = "INSUFFICIENT_CLOUDHSM_HSMS"
	CodeFreeAddresses      = "INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET"
	CodeInternal           = "INTERNAL_ERROR"
	CodeInvalidCredentials = "INVALID_CREDENTIALS"
	CodeNetwork            = "NETWORK_ERRORS"
	CodeSubnetNotFound     = "SUBNET_NOT_FOUND"
	CodeUserLockedOut      = "USER_LOCKED_OUT"
	CodeUserLoggedIn       = "USER_LOGGED_IN"
	CodeUserNotFound       = "USER_NOT_FOUND"
)

// Request is an API call the state machine rules on.
type Request int

const (
	ReqConnect Request = iota
	ReqDisconnect
	ReqUpdateName     // UpdateCustomKeyStore with only NewCustomKeyStoreName
	ReqUpdateSettings // UpdateCustomKeyStore with KeyStorePassword or CloudHsmClusterId
	ReqDelete
	ReqCreateKey
)

// Verdict is what a request does in a state.
type Verdict int

const (
	Refuse Verdict = iota // CustomKeyStoreInvalidStateException
	Proceed
	NoOp // accepted, nothing changes (a connect while connecting or connected)
)

// Allowed is the state machine's table: what each request does in each
// state. Unknown states refuse everything.
func Allowed(state string, r Request) Verdict {
	switch r {
	case ReqConnect:
		switch state {
		case Disconnected:
			return Proceed
		case Connected, Connecting:
			return NoOp
		}
	case ReqDisconnect:
		switch state {
		case Connected, Connecting, Failed:
			return Proceed
		}
	case ReqUpdateName:
		switch state {
		case Disconnected, Connected:
			return Proceed
		}
	case ReqUpdateSettings, ReqDelete:
		if state == Disconnected {
			return Proceed
		}
	case ReqCreateKey:
		if state == Connected {
			return Proceed
		}
	}
	return Refuse
}

// Key states (docs/design.md, "The KMS custom key store", key states).
const (
	KeyEnabled         = "Enabled"
	KeyDisabled        = "Disabled"
	KeyPendingDeletion = "PendingDeletion"
	KeyUnavailable     = "Unavailable"
)

// KeyState is a KMS key's state given its own settings and its key
// store's connection: pending deletion stays so while unavailable; a key
// of a store that is not connected is Unavailable, and returns to its
// own state on reconnect.
func KeyState(enabled, pendingDeletion bool, storeState string) string {
	switch {
	case pendingDeletion:
		return KeyPendingDeletion
	case storeState != Connected:
		return KeyUnavailable
	case !enabled:
		return KeyDisabled
	}
	return KeyEnabled
}
