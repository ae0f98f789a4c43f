package mfa

import (
	"bytes"
	"fmt"
	"image/png"
	"strings"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

// The QR encoder is boombuler/barcode, which pquerna/otp already depends on
// for its own Key.Image: no further module, and it renders the matrix we
// turn into SVG ourselves.

func qrMatrix(uri string) (barcode.Barcode, error) {
	c, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encode qr: %w", err)
	}
	return c, nil
}

// QRPNG renders uri as a QR code PNG, each module scale pixels, with the
// 4-module quiet zone scanners need.
func QRPNG(uri string, scale int) ([]byte, error) {
	c, err := qrMatrix(uri)
	if err != nil {
		return nil, err
	}
	n := c.Bounds().Dx()
	img, err := barcode.Scale(c, n*scale, n*scale)
	if err != nil {
		return nil, err
	}
	// Quiet zone: draw onto a larger white canvas.
	var buf bytes.Buffer
	if err := png.Encode(&buf, withMargin(img, 4*scale)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// QRSVG renders uri as a QR code in SVG: one path of unit squares, black on
// white, with a 4-module quiet zone, and a title for screen readers.
func QRSVG(uri, title string) (string, error) {
	c, err := qrMatrix(uri)
	if err != nil {
		return "", err
	}
	n := c.Bounds().Dx()
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img">`, n+8, n+8)
	fmt.Fprintf(&b, `<title>%s</title><rect width="100%%" height="100%%" fill="#fff"/><path fill="#000" d="`, xmlEscape(title))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			r, _, _, _ := c.At(x, y).RGBA()
			if r == 0 {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
