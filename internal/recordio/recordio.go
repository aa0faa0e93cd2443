package recordio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Append appends one framed record to dst.
func Append(dst, record []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(record)), 10)
	dst = append(dst, '\n')
	return append(dst, record...)
}

// ErrTooLarge is returned for a record longer than the reader's limit.
var ErrTooLarge = errors.New("recordio: record exceeds the size limit")

// maxHeader is the most digits a length may have (the decimal width of a
// uint64), matching the mesos-go reader.
const maxHeader = 20

// Reader reads records one at a time.
type Reader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

// NewReader returns a reader that refuses records larger than max bytes.
// A *bufio.Reader (of 4 KiB or more) is used as it is.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 4096), max: max}
}

// Read returns the next record. The slice is valid until the next call.
// A clean end of stream between records is io.EOF; an end inside a record is
// io.ErrUnexpectedEOF.
func (r *Reader) Read() ([]byte, error) {
	var n int64
	digits := 0
	for {
		c, err := r.r.ReadByte()
		if err != nil {
			if err == io.EOF && digits == 0 {
				return nil, io.EOF
			}
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == '\n' {
			if digits == 0 {
				return nil, errors.New("recordio: empty record length")
			}
			break
		}
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("recordio: invalid byte %q in record length", c)
		}
		digits++
		if digits > maxHeader {
			return nil, errors.New("recordio: record length too long")
		}
		n = n*10 + int64(c-'0')
		if n > int64(r.max) {
			return nil, fmt.Errorf("%w: %d+ bytes announced, at most %d", ErrTooLarge, n, r.max)
		}
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	r.buf = r.buf[:n]
	if _, err := io.ReadFull(r.r, r.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return r.buf, nil
}
