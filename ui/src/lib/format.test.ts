import { describe, expect, it } from 'vitest';
import { formatPrice } from './format';

describe('formatPrice', () => {
  it('shows whole and fractional dollars with two decimals', () => {
    expect(formatPrice(2900)).toBe('$29.00');
    expect(formatPrice(4999)).toBe('$49.99');
    expect(formatPrice(5)).toBe('$0.05');
    expect(formatPrice(123456)).toBe('$1,234.56');
  });

  it('calls a zero price free', () => {
    expect(formatPrice(0)).toBe('Free');
  });

  it('refuses amounts that are not whole cents', () => {
    expect(() => formatPrice(-100)).toThrow(RangeError);
    expect(() => formatPrice(12.5)).toThrow(RangeError);
    expect(() => formatPrice(Number.NaN)).toThrow(RangeError);
  });
});
