package transport

import "errors"

// Sentinel errors. Each returned error wraps one of these, so callers can test
// with errors.Is and still show the wrapped text, which says what to do.
var (
	// ErrClosed is returned by methods of a Host after Close.
	ErrClosed = errors.New("transport: host is closed")

	// ErrInsecureKeyFile means identity.key can be read by group or others.
	ErrInsecureKeyFile = errors.New("transport: identity key file is readable by other users")

	// ErrMalformedKey means identity.key does not hold an ed25519 libp2p key.
	ErrMalformedKey = errors.New("transport: identity key file is malformed")

	// ErrInvalidMultiaddr means a peer address could not be parsed or used.
	ErrInvalidMultiaddr = errors.New("transport: invalid peer multiaddr")

	// ErrMissingPeerID means a multiaddr has no /p2p/<peer-id> part, so the
	// remote end could not be authenticated.
	ErrMissingPeerID = errors.New("transport: multiaddr has no /p2p/<peer-id> part")

	// ErrFrameTooLarge means a frame announces or carries more bytes than the cap.
	ErrFrameTooLarge = errors.New("transport: frame exceeds the size limit")

	// ErrFrameTruncated means a stream ended in the middle of a frame.
	ErrFrameTruncated = errors.New("transport: frame truncated")

	// ErrUnknownPeer is returned by RemovePeer for a peer not in the peer book.
	ErrUnknownPeer = errors.New("transport: peer is not in the peer book")

	// ErrMalformedPeerBook means peers.json could not be parsed.
	ErrMalformedPeerBook = errors.New("transport: peer book is malformed")
)

// multiaddrExample is shown in every error about a peer address, so an
// operator sees the form Meridian expects.
const multiaddrExample = "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…"
