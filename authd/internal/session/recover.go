package session

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authd/authd/authd/internal/fsutil"
)

// Damage is what OpenEmbedded found damaged in the data directory and
// recovered around. The zero Damage means the files were intact (a torn tail
// of the newest log, the normal result of a crash, is not damage).
type Damage struct {
	// Recovered counts the intact records read from damaged files.
	Recovered int64
	// Records counts the records lost: each damaged stretch counts as one
	// unless the snapshot's end record says how many sessions it held.
	Records int64
	// Bytes counts the bytes skipped.
	Bytes int64
	// Tombstones counts the remembered reasons dropped because this version
	// does not know them (written by a newer authd). They are not damage:
	// the sessions load, the login page just says less.
	Tombstones int64
	// Files names the copies of damaged files kept aside in the data
	// directory (<name>.damaged-<time>), those of earlier opens included:
	// they stay reported until an operator moves them away.
	Files []string
}

// Damaged reports whether anything was damaged or a copy of a damaged file is
// still kept aside.
func (d Damage) Damaged() bool { return d.Records > 0 || d.Bytes > 0 || len(d.Files) > 0 }

// asideInfix marks the copy of a damaged file: sessions.snap.damaged-<time>.
const asideInfix = ".damaged-"

// frameScan is what scanFrames read.
type frameScan struct {
	records int64 // intact records passed to the caller
	damaged int64 // damaged stretches followed by an intact frame
	skipped int64 // bytes in those stretches
	tail    int64 // offset where trailing bytes with no intact frame begin; -1 if none
	end     int64 // offset of the end of the data
}

// scanFrames reads every frame and passes the decoded intact ones to use,
// which returns false for a frame that does not belong (the stretch is then
// damaged). An intact frame (its CRC verifies) that does not decode is an
// error, not damage. After a damaged frame it steps forward a byte at a time until a
// frame's CRC verifies and it decodes, so one bad record never hides the
// intact ones after it. A damaged stretch that runs to the end of the data is
// reported as tail, for the caller to judge: in the newest log it is a torn
// write, anywhere else damage.
func scanFrames(fr *frameReader, use func(o *op) bool) (frameScan, error) {
	sc := frameScan{tail: -1}
	bad := int64(-1) // start of the current damaged stretch
	for {
		p, n, err := fr.peek()
		if errors.Is(err, io.EOF) {
			if bad >= 0 {
				sc.tail = bad
			}
			sc.end = fr.off
			return sc, nil
		}
		if err != nil && !errors.Is(err, errTorn) {
			return sc, err
		}
		if err == nil {
			o, derr := decodeOp(p)
			if derr != nil && bad < 0 {
				// Its CRC verifies, so this is no damage but a record this
				// version cannot read (from a newer authd, say): skipping it
				// could undo a revocation, so the open stops.
				return sc, fmt.Errorf("undecodable record at offset %d", fr.off)
			}
			if derr == nil {
				if bad >= 0 {
					// An intact frame after damage: the stretch before it is lost.
					sc.damaged++
					sc.skipped += fr.off - bad
					bad = -1
				}
				if use(&o) {
					sc.records++
					if err := fr.skip(n); err != nil {
						return sc, err
					}
					continue
				}
			}
			if bad < 0 {
				// An intact record that does not belong here: it alone is
				// damaged.
				bad = fr.off
				if err := fr.skip(n); err != nil {
					return sc, err
				}
				continue
			}
		}
		if bad < 0 {
			bad = fr.off
		}
		if err := fr.skip(1); err != nil {
			return sc, err
		}
	}
}

// keepAside copies the damaged file name to name.damaged-<time> in the same
// directory, durably, before anything rewrites or deletes the original, and
// returns the copy's base name.
func keepAside(name string, now time.Time) (string, error) {
	src, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("keep damaged file aside: %w", err)
	}
	defer src.Close()
	stamp := now.UTC().Format("20060102T150405Z")
	var dst *os.File
	var dstName string
	for i := 0; ; i++ {
		dstName = name + asideInfix + stamp
		if i > 0 {
			dstName += "-" + strconv.Itoa(i)
		}
		dst, err = os.OpenFile(dstName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil || !errors.Is(err, os.ErrExist) || i > 100 {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("keep damaged file aside: %w", err)
	}
	_, err = io.Copy(dst, src)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Dir(name))
	}
	if err != nil {
		return "", fmt.Errorf("keep damaged file aside: %w", err)
	}
	return filepath.Base(dstName), nil
}

// listAside returns the base names of the damaged files kept aside in dir.
func listAside(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read data directory: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), asideInfix) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}
