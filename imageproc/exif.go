package imageproc

import (
	"bytes"
	"encoding/binary"
)

// exifOrientation returns the EXIF orientation tag (1-8) of encoded JPEG, PNG
// or WebP data, or 1 when there is none or it cannot be read.
func exifOrientation(format string, data []byte) int {
	var tiff []byte
	switch format {
	case "jpeg":
		for i := 2; i+4 <= len(data) && data[i] == 0xff; {
			marker := data[i+1]
			if marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7) {
				i += 2
				continue
			}
			if marker == 0xda || marker == 0xd9 { // start of scan / end of image
				break
			}
			n := int(binary.BigEndian.Uint16(data[i+2:]))
			if n < 2 || i+2+n > len(data) {
				break
			}
			seg := data[i+4 : i+2+n]
			if marker == 0xe1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
				tiff = seg[6:]
				break
			}
			i += 2 + n
		}
	case "png":
		for i := 8; i+12 <= len(data); {
			n := int(binary.BigEndian.Uint32(data[i:]))
			if n < 0 || i+12+n > len(data) {
				break
			}
			if string(data[i+4:i+8]) == "eXIf" {
				tiff = data[i+8 : i+8+n]
				break
			}
			i += 12 + n
		}
	case "webp":
		for i := 12; i+8 <= len(data); {
			n := int(binary.LittleEndian.Uint32(data[i+4:]))
			if n < 0 || i+8+n > len(data) {
				break
			}
			if string(data[i:i+4]) == "EXIF" {
				tiff = bytes.TrimPrefix(data[i+8:i+8+n], []byte("Exif\x00\x00"))
				break
			}
			i += 8 + n + n%2
		}
	}
	return tiffOrientation(tiff)
}

// tiffOrientation reads tag 0x0112 from the first IFD of TIFF-structured EXIF data.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	ifd := int64(bo.Uint32(t[4:]))
	if ifd < 8 || ifd+2 > int64(len(t)) {
		return 1
	}
	n := int64(bo.Uint16(t[ifd:]))
	for k := int64(0); k < n; k++ {
		e := ifd + 2 + 12*k
		if e+12 > int64(len(t)) {
			return 1
		}
		if bo.Uint16(t[e:]) == 0x0112 && bo.Uint16(t[e+2:]) == 3 {
			if o := int(bo.Uint16(t[e+8:])); o >= 1 && o <= 8 {
				return o
			}
			return 1
		}
	}
	return 1
}

// orient returns img transformed as PIL's ImageOps.exif_transpose does for
// the EXIF orientation o (2: mirror, 3: rotate 180, 4: flip, 5: transpose,
// 6: rotate 90 clockwise, 7: transverse, 8: rotate 90 counter-clockwise).
func orient(img *RGB, o int) *RGB {
	if o < 2 || o > 8 {
		return img
	}
	W, H := img.Width, img.Height
	ow, oh := W, H
	if o >= 5 {
		ow, oh = H, W
	}
	out := NewRGB(ow, oh)
	for y := range oh {
		for x := range ow {
			var sx, sy int
			switch o {
			case 2:
				sx, sy = W-1-x, y
			case 3:
				sx, sy = W-1-x, H-1-y
			case 4:
				sx, sy = x, H-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, H-1-x
			case 7:
				sx, sy = W-1-y, H-1-x
			case 8:
				sx, sy = W-1-y, x
			}
			copy(out.Pix[(y*ow+x)*3:(y*ow+x)*3+3], img.Pix[(sy*W+sx)*3:(sy*W+sx)*3+3])
		}
	}
	return out
}
