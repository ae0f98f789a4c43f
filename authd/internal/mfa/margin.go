package mfa

import (
	"image"
	"image/color"
	"image/draw"
)

func withMargin(src image.Image, m int) image.Image {
	b := src.Bounds()
	dst := image.NewGray(image.Rect(0, 0, b.Dx()+2*m, b.Dy()+2*m))
	draw.Draw(dst, dst.Bounds(), &image.Uniform{color.White}, image.Point{}, draw.Src)
	draw.Draw(dst, image.Rect(m, m, m+b.Dx(), m+b.Dy()), src, b.Min, draw.Src)
	return dst
}
