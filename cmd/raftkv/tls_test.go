package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quorumkit/raft"
	"github.com/stretchr/testify/require"
)

// writeCertPair writes a PEM certificate and key for 127.0.0.1 signed by
// parent/parentKey (self-signed CA when parent is nil) and returns the
// certificate, key and paths.
func writeCertPair(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return cert, key, certPath, keyPath
}

func TestLoadTLSConfigRefusesIncompleteOrBadFiles(t *testing.T) {
	dir := t.TempDir()
	_, _, caPath, caKeyPath := writeCertPair(t, dir, "ca", nil, nil)
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))

	conf, err := loadTLSConfig("", "", "")
	require.NoError(t, err)
	require.Nil(t, conf, "no TLS flags means plain TCP")
	for name, args := range map[string][3]string{
		"missing key":     {caPath, "", caPath},
		"missing CA":      {caPath, caKeyPath, ""},
		"unreadable pair": {notPEM, caKeyPath, caPath},
		"CA file not PEM": {caPath, caKeyPath, notPEM},
		"CA file missing": {caPath, caKeyPath, filepath.Join(dir, "nope")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadTLSConfig(args[0], args[1], args[2])
			require.Error(t, err)
		})
	}
}

// steadyTimeouts keeps a real-time two-node cluster's leadership steady on
// a loaded machine (at 50ms a starved heartbeat goroutine is enough to
// depose the leader), while an election still takes well under a second.
func steadyTimeouts(c *raft.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 300 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// Two nodes replicate over mutual TLS, and a node with a certificate from
// another CA cannot take part. Real sockets, real time, bounded waits.
func TestRaftPortUsesMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caPath, _ := writeCertPair(t, dir, "ca", nil, nil)
	tlsFor := func(name string) *nodeConfig {
		_, _, certPath, keyPath := writeCertPair(t, dir, name, ca, caKey)
		conf, err := loadTLSConfig(certPath, keyPath, caPath)
		require.NoError(t, err)
		return &nodeConfig{ID: name, RaftAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, name), TLS: conf, Tune: steadyTimeouts}
	}
	var nodes []*node
	var servers []raft.Server
	for _, name := range []string{"a", "b"} {
		n, err := openNode(*tlsFor(name))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, n.close(false)) })
		nodes = append(nodes, n)
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(name), Address: n.trans.LocalAddr()})
	}
	for _, n := range nodes {
		require.NoError(t, n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	}
	// Write through whichever node leads. On a loaded machine leadership
	// can still move between the moment a leader is seen and the Apply:
	// ErrNotLeader means the command never entered the log, and after
	// ErrLeadershipLost it may or may not have; the put is idempotent, so
	// trying the new leader is safe either way.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var leader *node
	for {
		for _, n := range nodes {
			if n.isLeader() {
				leader = n
			}
		}
		if leader != nil {
			_, err := leader.apply(ctx, encodeCommand(opPut, "secret", "over tls"))
			if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) {
				require.NoError(t, err)
				break
			}
		}
		require.NoError(t, ctx.Err(), "no leader took the write within 10s")
		time.Sleep(5 * time.Millisecond)
	}
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if v, ok := n.fsm.get("secret"); !ok || v != "over tls" {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "the write did not reach both nodes over TLS")

	// A client whose certificate another CA signed is refused by the
	// Raft port, even though it trusts the server.
	otherCA, otherKey, _, _ := writeCertPair(t, t.TempDir(), "other-ca", nil, nil)
	_, _, strangerCert, strangerKey := writeCertPair(t, dir, "stranger", otherCA, otherKey)
	stranger, err := tls.LoadX509KeyPair(strangerCert, strangerKey)
	require.NoError(t, err)
	trusted := x509.NewCertPool()
	trusted.AddCert(ca)
	conn, err := tls.Dial("tcp", string(leader.trans.LocalAddr()), &tls.Config{
		RootCAs: trusted,
		// Present the certificate even though the server's request names
		// only its own CA (Go's client would otherwise send none).
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil },
	})
	if err == nil {
		// With TLS 1.3 the server's verdict on the client certificate
		// arrives after the client's side of the handshake.
		defer conn.Close()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = conn.Read(make([]byte, 1))
	}
	require.Error(t, err, "the Raft port accepted a certificate from an unknown CA")
	t.Logf("refused as expected: %v", err)
	require.ErrorContains(t, err, "unknown certificate authority")
}
