package gate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
	"github.com/tiltai/tiltai/gate/control"
)

// tlsConfig holds both ends of mutual TLS: every gate connection is TLS, both
// sides present a certificate, and each verifies the other's chain against
// the CA. Peer names are not checked: peers are addressed by IP and port
// chosen by the scheduler, so the CA is what says who belongs.
type tlsConfig struct {
	server, client *tls.Config
}

func loadTLS(f control.TLSFiles) (*tlsConfig, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, fmt.Errorf("cannot set up mutual TLS: need %s, %s and %s", control.EnvTLSCert, control.EnvTLSKey, control.EnvTLSCA)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("cannot set up mutual TLS: certificate %s / key %s: %w", f.Cert, f.Key, err)
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("cannot set up mutual TLS: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cannot set up mutual TLS: no PEM certificate in CA file %s", f.CA)
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer presented no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("peer certificate: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	return &tlsConfig{
		server: &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		},
		client: &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			// The chain is verified below against the CA; the host name is not.
			InsecureSkipVerify:    true,
			VerifyPeerCertificate: verify,
		},
	}, nil
}

func (t *tlsConfig) wrap(nc net.Conn, server bool) net.Conn {
	if server {
		return tls.Server(nc, t.server)
	}
	return tls.Client(nc, t.client)
}

// RegisterTLSTransport registers a zmq4 transport called name (endpoints
// name://host:port) that speaks mutual TLS with the given files, so that a
// plain zmq4 socket can talk to gates that run with TLS.
func RegisterTLSTransport(name string, f control.TLSFiles) error {
	t, err := loadTLS(f)
	if err != nil {
		return err
	}
	return zmq4.RegisterTransport(name, tlsTransport{t: t, tcp: transport.New("tcp")})
}

type tlsTransport struct {
	t   *tlsConfig
	tcp transport.Transport
}

func (tt tlsTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	nc, err := tt.tcp.Dial(ctx, d, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(nc, tt.t.client)
	if err := c.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (tt tlsTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := tt.tcp.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, tt.t.server), nil
}

func (tt tlsTransport) Addr(ep string) (string, error) { return tt.tcp.Addr(ep) }
