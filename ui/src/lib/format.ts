// Display formatting of domain values shared by both shells.

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/** A plan price for people: "$29.00", or "Free" when nothing is charged. */
export function formatPrice(cents: number): string {
  if (!Number.isInteger(cents) || cents < 0) {
    throw new RangeError(`price must be a non-negative whole number of cents, got ${cents}`);
  }
  return cents === 0 ? 'Free' : usd.format(cents / 100);
}
