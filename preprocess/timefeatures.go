package preprocess

import "time"

// Time-feature columns of a TimeFeatures row.
const (
	TimeMinute  = iota // 0..59
	TimeHour           // 0..23
	TimeWeekday        // 0..6, Monday = 0
	TimeDay            // 1..31, day of month
	TimeMonth          // 1..12
)

// TimeFeatures returns [len(ts)][5] int64 stamps: minute, hour, weekday
// (Monday = 0), day of month, month, each taken in the timestamp's own
// location/offset (the offset the caller gave).
//
// The values index the predictor's time tables directly (minute 60 rows,
// hour 24, weekday 7, day 32, month 13). The same instant given as
// "09:00+08:00" and as "01:00Z" therefore yields different features, as it
// does upstream, where pandas takes the fields in the timestamp's own zone.
// Naive timestamps should be parsed as UTC, which leaves their wall-clock
// fields unchanged. The result is a new slice owned by the caller.
func TimeFeatures(ts []time.Time) []int64 {
	out := make([]int64, len(ts)*NumTimeFeatures)
	for i, t := range ts {
		_, month, day := t.Date()
		hour, minute, _ := t.Clock()
		row := out[i*NumTimeFeatures : (i+1)*NumTimeFeatures : (i+1)*NumTimeFeatures]
		row[TimeMinute] = int64(minute)
		row[TimeHour] = int64(hour)
		row[TimeWeekday] = int64((t.Weekday() + 6) % 7) // Go: Sunday = 0
		row[TimeDay] = int64(day)
		row[TimeMonth] = int64(month)
	}
	return out
}
