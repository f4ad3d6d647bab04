package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// TLSStreamLayer is a StreamLayer over TLS. With a config that both presents
// a certificate and requires one from peers (see NewTLSStreamLayer), every
// connection between nodes is mutually authenticated.
type TLSStreamLayer struct {
	tcp    *TCPStreamLayer
	config *tls.Config
}

// NewTLSStreamLayer listens on bindAddr for TLS connections. The same config
// serves both directions, so for mutual TLS it needs:
//
//   - Certificates: this node's certificate, valid for the address peers
//     dial (an IP SAN for an "ip:port" address);
//   - RootCAs: the CA that signed the peers' certificates, to check servers;
//   - ClientCAs and ClientAuth: tls.RequireAndVerifyClientCert, to check
//     clients.
//
// When config.ServerName is empty, a dialling node checks the server's
// certificate against the host part of the address it dials. A connection
// whose handshake fails is closed and logged by the NetworkTransport.
// advertise works as for NewTCPTransport.
func NewTLSStreamLayer(bindAddr string, advertise net.Addr, config *tls.Config) (*TLSStreamLayer, error) {
	if config == nil {
		return nil, errors.New("raft-net: TLS stream layer needs a tls.Config")
	}
	tcp, err := newTCPStreamLayer(bindAddr, advertise)
	if err != nil {
		return nil, err
	}
	return &TLSStreamLayer{tcp: tcp, config: config}, nil
}

// NewTLSTransportWithConfig listens on bindAddr for TLS connections (see
// NewTLSStreamLayer) and returns a NetworkTransport over them with the
// settings of config; it sets config.Stream.
func NewTLSTransportWithConfig(bindAddr string, advertise net.Addr, tlsConfig *tls.Config, config *NetworkTransportConfig) (*NetworkTransport, error) {
	stream, err := NewTLSStreamLayer(bindAddr, advertise, tlsConfig)
	if err != nil {
		return nil, err
	}
	config.Stream = stream
	return NewNetworkTransportWithConfig(config), nil
}

// Dial opens a TLS connection to address; the handshake completes, or fails,
// within timeout.
func (t *TLSStreamLayer) Dial(address ServerAddress, timeout time.Duration) (net.Conn, error) {
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: t.config}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return dialer.DialContext(ctx, "tcp", string(address))
}

// Accept waits for the next incoming connection. The NetworkTransport
// completes its handshake, under a deadline, before reading any request.
func (t *TLSStreamLayer) Accept() (net.Conn, error) {
	conn, err := t.tcp.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(conn, t.config), nil
}

// Close stops listening.
func (t *TLSStreamLayer) Close() error { return t.tcp.Close() }

// Addr returns the advertised address if one was given, else the bound one.
func (t *TLSStreamLayer) Addr() net.Addr { return t.tcp.Addr() }
