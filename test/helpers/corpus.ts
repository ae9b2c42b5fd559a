/** Hostile names from the issue (and a few more): every tag surface must refuse each one. */
export const HOSTILE_TAGS = [
  '..',
  '../x',
  '/etc/passwd',
  'a/b',
  '-rf',
  '',
  'a'.repeat(65),
  'a\0b',
  'ехе',
  'tаg',
  '.hidden',
  'a b',
  'a;rm',
  'a\nb',
  '~root',
  'x..y/..',
];
