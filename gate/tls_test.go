package gate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tiltai/tiltai/gate/control"
)

// writeCA creates a CA and one leaf certificate signed by it, as PEM files.
func writeCA(t *testing.T, dir, name string) control.TLSFiles {
	t.Helper()
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, name+"-"+file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return control.TLSFiles{Cert: write("cert.pem", "CERTIFICATE", der), Key: write("key.pem", "EC PRIVATE KEY", kder), CA: write("ca.pem", "CERTIFICATE", caDER)}
}

// TestMutualTLS: gates with certificates from the same CA talk; a peer
// without TLS, or with a certificate from another CA, delivers nothing and
// is counted as refused.
func TestMutualTLS(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	dir := t.TempDir()
	good := writeCA(t, dir, "cluster")
	rogue := writeCA(t, dir, "rogue")
	hub := func(files control.TLSFiles, spec control.GateSpec, gov Governor) *Hub {
		h, err := New(context.Background(), Config{Logger: testLogger(t), TLS: files, Governor: gov,
			Gates: []control.GateSpec{spec}, Options: Options{HandshakeTimeout: time.Second, DrainTimeout: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	inH := hub(good, control.GateSpec{Name: "s", Dir: control.In, Pattern: control.Pull, Bind: "tcp://127.0.0.1:0"}, nil)
	in, err := inH.In("s")
	if err != nil {
		t.Fatal(err)
	}
	send := func(files control.TLSFiles, body string) *Gate {
		mem := NewMemory()
		h := hub(files, control.GateSpec{Name: "s", Dir: control.Out, Pattern: control.Push}, mem)
		out, err := h.Out("s")
		if err != nil {
			t.Fatal(err)
		}
		mem.Publish(snap(1, "s", control.Push, in.Addr()))
		out.Send(ctx, []byte(body))
		return out
	}
	send(control.TLSFiles{}, "plain")
	send(rogue, "rogue")
	waitFor(t, 20*time.Second, "two refusals", func() bool { return in.Stats().Refused >= 2 })
	send(good, "trusted")
	m, err := in.Recv(ctx)
	if err != nil || string(m[0]) != "trusted" {
		t.Fatalf("got %q %v; only the trusted peer may deliver", m, err)
	}
	if in.Stats().Received != 1 {
		t.Fatalf("received %d messages", in.Stats().Received)
	}
	if _, err := loadTLS(control.TLSFiles{Cert: good.Cert, Key: good.Key, CA: good.Cert + ".missing"}); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
