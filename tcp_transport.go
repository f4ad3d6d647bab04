package raft

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	errNotAdvertisable = errors.New("local bind address is not advertisable")
	errNotTCP          = errors.New("local address is not a TCP address")
)

// TCPStreamLayer is a StreamLayer over plain TCP.
type TCPStreamLayer struct {
	advertise net.Addr
	listener  *net.TCPListener
}

// NewTCPTransport listens on bindAddr and returns a NetworkTransport over
// TCP. Peers are told to reach it at advertise, or at the bound address if
// advertise is nil (which must then not be an unspecified IP such as
// 0.0.0.0).
func NewTCPTransport(bindAddr string, advertise net.Addr, maxPool int, timeout time.Duration, logOutput io.Writer) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		return NewNetworkTransport(stream, maxPool, timeout, logOutput)
	})
}

// NewTCPTransportWithLogger is NewTCPTransport logging to logger.
func NewTCPTransportWithLogger(bindAddr string, advertise net.Addr, maxPool int, timeout time.Duration, logger hclog.Logger) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		return NewNetworkTransportWithLogger(stream, maxPool, timeout, logger)
	})
}

// NewTCPTransportWithConfig is NewTCPTransport with every setting of config;
// it sets config.Stream to the new TCPStreamLayer.
func NewTCPTransportWithConfig(bindAddr string, advertise net.Addr, config *NetworkTransportConfig) (*NetworkTransport, error) {
	return newTCPTransport(bindAddr, advertise, func(stream StreamLayer) *NetworkTransport {
		config.Stream = stream
		return NewNetworkTransportWithConfig(config)
	})
}

func newTCPTransport(bindAddr string, advertise net.Addr, build func(StreamLayer) *NetworkTransport) (*NetworkTransport, error) {
	stream, err := newTCPStreamLayer(bindAddr, advertise)
	if err != nil {
		return nil, err
	}
	return build(stream), nil
}

// newTCPStreamLayer listens on bindAddr and checks that the address peers
// will be given is a usable TCP address.
func newTCPStreamLayer(bindAddr string, advertise net.Addr) (*TCPStreamLayer, error) {
	listener, err := net.Listen("tcp", bindAddr)
	if err != nil {
		return nil, err
	}
	if err := checkAdvertisable(listener.Addr(), advertise); err != nil {
		listener.Close()
		return nil, err
	}
	return &TCPStreamLayer{advertise: advertise, listener: listener.(*net.TCPListener)}, nil
}

// checkAdvertisable checks the address peers will dial: advertise if set,
// otherwise the bound address.
func checkAdvertisable(bound, advertise net.Addr) error {
	addr := advertise
	if addr == nil {
		addr = bound
	}
	tcpAddr, ok := addr.(*net.TCPAddr)
	if !ok {
		return errNotTCP
	}
	if tcpAddr.IP == nil || tcpAddr.IP.IsUnspecified() {
		return errNotAdvertisable
	}
	return nil
}

// Dial opens a TCP connection to address.
func (t *TCPStreamLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
}

// Accept waits for the next incoming connection.
func (t *TCPStreamLayer) Accept() (net.Conn, error) {
	return t.listener.Accept()
}

// Close stops listening.
func (t *TCPStreamLayer) Close() error {
	return t.listener.Close()
}

// Addr returns the advertised address if one was given, else the bound one.
func (t *TCPStreamLayer) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.listener.Addr()
}
