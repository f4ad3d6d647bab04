//go:build go1.25

package raft

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made up for one test; no key is ever
// written to disk.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a node certificate valid for 127.0.0.1, as server and client.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mutualTLS is the config of a node holding cert that trusts peers signed
// by trusted, in both directions.
func mutualTLS(cert tls.Certificate, trusted *testCA) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      trusted.pool,
		ClientCAs:    trusted.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// newTestTLSTransport starts a TLS transport on a free loopback port. Real
// sockets, so real time: every wait is bounded by testWait.
func newTestTLSTransport(t *testing.T, config *tls.Config) (*NetworkTransport, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	trans, err := NewTLSTransportWithConfig("127.0.0.1:0", nil, config, &NetworkTransportConfig{
		MaxPool: 2, Timeout: testWait, Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, trans.Close()) })
	return trans, logs
}

// TestTLSTransportMutualAuthentication: peers with certificates from the
// cluster's CA exchange RPCs (including a snapshot stream and a pipeline)
// over mutual TLS.
func TestTLSTransportMutualAuthentication(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	server, _ := newTestTLSTransport(t, mutualTLS(ca.issue(t, "n1"), ca))
	client, _ := newTestTLSTransport(t, mutualTLS(ca.issue(t, "n2"), ca))
	snapshot := bytes.Repeat([]byte{7}, 300000)
	answerRPCs(t, server, func(rpc RPC) {
		switch req := rpc.Command.(type) {
		case *RequestVoteRequest:
			rpc.Respond(&RequestVoteResponse{Term: req.Term, Granted: true}, nil)
		case *InstallSnapshotRequest:
			data, err := io.ReadAll(rpc.Reader)
			rpc.Respond(&InstallSnapshotResponse{Term: req.Term, Success: bytes.Equal(data, snapshot)}, err)
		case *AppendEntriesRequest:
			rpc.Respond(&AppendEntriesResponse{Term: req.Term, LastLog: req.PrevLogEntry, Success: true}, nil)
		}
	})
	target := server.LocalAddr()

	vote := &RequestVoteResponse{}
	require.NoError(t, client.RequestVote("n1", target, &RequestVoteRequest{Term: 4}, vote))
	require.Equal(t, &RequestVoteResponse{Term: 4, Granted: true}, vote)

	installed := &InstallSnapshotResponse{}
	require.NoError(t, client.InstallSnapshot("n1", target, &InstallSnapshotRequest{Term: 4, Size: int64(len(snapshot))}, installed, bytes.NewReader(snapshot)))
	require.True(t, installed.Success)

	pipeline, err := client.AppendEntriesPipeline("n1", target)
	require.NoError(t, err)
	defer pipeline.Close()
	for i := uint64(1); i <= 5; i++ {
		_, err := pipeline.AppendEntries(&AppendEntriesRequest{Term: 4, PrevLogEntry: i}, &AppendEntriesResponse{})
		require.NoError(t, err)
		future := receive(t, pipeline.Consumer(), "pipelined answer")
		require.NoError(t, future.Error())
		require.Equal(t, i, future.Response().LastLog)
	}
}

// TestTLSTransportRefusesUntrustedPeers: a peer whose certificate comes from
// another CA gets no RPC through and the server logs the refusal; plain TCP
// to a TLS node, and TLS to a plain node, fail cleanly.
func TestTLSTransportRefusesUntrustedPeers(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	rogueCA := newTestCA(t, "rogue CA")
	server, serverLogs := newTestTLSTransport(t, mutualTLS(ca.issue(t, "n1"), ca))
	plainServer, plainLogs := newTestNetTransport(t, nil)
	for _, trans := range []*NetworkTransport{server, plainServer} {
		answerRPCs(t, trans, func(rpc RPC) { rpc.Respond(&RequestVoteResponse{Granted: true}, nil) })
	}

	// Trusts the cluster CA, but presents a certificate the cluster does not.
	rogueConfig := mutualTLS(rogueCA.issue(t, "rogue"), ca)
	rogue, _ := newTestTLSTransport(t, rogueConfig)
	// Trusts only its own CA, so it refuses the cluster's server certificate.
	stranger, _ := newTestTLSTransport(t, mutualTLS(rogueCA.issue(t, "stranger"), rogueCA))
	plainClient, _ := newTestNetTransport(t, nil)
	member, _ := newTestTLSTransport(t, mutualTLS(ca.issue(t, "n3"), ca))

	cases := []struct {
		name       string
		client     *NetworkTransport
		target     *NetworkTransport
		logs       *logBuffer
		wantLogged string
	}{
		{"client certificate from another CA", rogue, server, serverLogs, "TLS handshake failed"},
		{"client distrusts the server's CA", stranger, server, serverLogs, "TLS handshake failed"},
		{"plain TCP to a TLS node", plainClient, server, serverLogs, "TLS handshake failed"},
		{"TLS to a plain TCP node", member, plainServer, plainLogs, "unknown rpc type 22"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logged := strings.Count(tc.logs.String(), tc.wantLogged)
			start := time.Now()
			resp := &RequestVoteResponse{}
			err := tc.client.RequestVote("n1", tc.target.LocalAddr(), &RequestVoteRequest{Term: 1}, resp)
			require.Error(t, err)
			require.False(t, resp.Granted)
			require.Less(t, time.Since(start), testWait, "failed at once, not by a timeout")
			// The server may log just after the client sees the refusal,
			// so wait (bounded) for the line to appear.
			require.Eventually(t, func() bool { return strings.Count(tc.logs.String(), tc.wantLogged) > logged },
				testWait, time.Millisecond, "refusal logged")
		})
	}

	// The trusted member still gets through.
	resp := &RequestVoteResponse{}
	require.NoError(t, member.RequestVote("n1", server.LocalAddr(), &RequestVoteRequest{Term: 1}, resp))
	require.True(t, resp.Granted)
}

func TestNewTLSStreamLayerNeedsConfig(t *testing.T) {
	_, err := NewTLSStreamLayer("127.0.0.1:0", nil, nil)
	require.ErrorContains(t, err, "needs a tls.Config")
}

// ExampleNewTLSStreamLayer sets up a NetworkTransport over mutual TLS: each
// node holds a certificate for the address it advertises, signed by the
// cluster's CA, and accepts only peers whose certificates that CA signed.
func ExampleNewTLSStreamLayer() {
	cert, err := tls.LoadX509KeyPair("node1.crt", "node1.key")
	if err != nil {
		log.Fatal(err)
	}
	caPEM, err := os.ReadFile("cluster-ca.crt")
	if err != nil {
		log.Fatal(err)
	}
	cluster := x509.NewCertPool()
	cluster.AppendCertsFromPEM(caPEM)

	stream, err := NewTLSStreamLayer("10.0.0.1:7000", nil, &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      cluster,                        // checks the peers we dial
		ClientCAs:    cluster,                        // checks the peers that dial us
		ClientAuth:   tls.RequireAndVerifyClientCert, // mutual TLS
		MinVersion:   tls.VersionTLS13,
	})
	if err != nil {
		log.Fatal(err)
	}
	trans := NewNetworkTransportWithConfig(&NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
	})
	defer trans.Close()
	// Pass trans to NewRaft.
}
